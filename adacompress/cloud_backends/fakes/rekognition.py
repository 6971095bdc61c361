"""Fake Amazon Rekognition DetectLabels: awsJson1.1 on `POST /`, SigV4 checked, real error shapes.

The wire format (errors with the API reference's statuses, which botocore turns into the same
`ClientError` codes as the real service) is `adacompress.cloud_backends.wire.rekognition`. The
signature is verified with the configured secret key, so a wrong secret fails like it does on AWS.
"""

from __future__ import annotations

from typing import Any

from adacompress.cloud_backends.fakes.server import FakeServer
from adacompress.cloud_backends.wire import rekognition
from adacompress.cloud_backends.wire.common import ErrorKind, WireReply, WireRequest

DEFAULT_ACCESS_KEY = "AKIAFAKEADACOMPRESS0"
DEFAULT_SECRET_KEY = "fake/adacompress/rekognition/secret0000"


class RekognitionFake(FakeServer):
    """DetectLabels over awsJson1.1; accepts one access key / secret key pair."""

    provider = "rekognition"
    wire = rekognition.FORMAT

    def __init__(self, *args, access_key: str = DEFAULT_ACCESS_KEY, secret_key: str = DEFAULT_SECRET_KEY,
                 region: str = "us-east-1", model_version: str = "3.0", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.access_key, self.secret_key, self.region = access_key, secret_key, region
        self.model_version = model_version
        """`LabelModelVersion` of every answer; give a fake with another `variant` another version."""

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL_REKOGNITION": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": self.region}

    def handle(self, request: WireRequest) -> WireReply:
        if not rekognition.ROUTE.matches(request):
            return rekognition.error_reply(ErrorKind.NOT_FOUND, f"no route for {request.method} {request.path}")
        rekognition.check_operation(request)
        rekognition.verify_sigv4(request, {} if self.faults.bad_credentials else {self.access_key: self.secret_key})
        self.begin_call()
        return self.recognize(request)

    def _name(self, imagenet_name: str) -> str:
        return imagenet_name.title()

    def _reply_options(self) -> dict[str, Any]:
        return {"model_version": self.model_version}
