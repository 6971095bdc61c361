"""Fake Amazon Rekognition DetectLabels: awsJson1.1 on `POST /`, SigV4 checked, real error shapes.

Errors are `{"__type": ..., "Message": ...}` with the status the DetectLabels API reference gives
(400; 500 for InternalServerError and ThrottlingException), which botocore turns into the same
`ClientError` codes as the real service. The signature is verified with the configured secret
key, so a wrong secret fails like it does on AWS.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import uuid
from urllib.parse import quote

from adacompress.cloud_backends.fakes.server import FakeRequest, FakeServer, Reply
from adacompress.cloud_backends.limits import REKOGNITION_LIMITS, check_image
from adacompress.errors import BadImage, ImageTooLarge, NotAnImage, TooManyPixels, UnsupportedFormat

TARGET = "RekognitionService.DetectLabels"
CONTENT_TYPE = "application/x-amz-json-1.1"
DEFAULT_ACCESS_KEY = "AKIAFAKEADACOMPRESS0"
DEFAULT_SECRET_KEY = "fake/adacompress/rekognition/secret0000"
_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
                   r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[^,]+), ?Signature=(?P<sig>[0-9a-f]+)")


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sigv4_signature(request: FakeRequest, secret_key: str, date: str, region: str, service: str,
                    signed_headers: str) -> str:
    """The SigV4 signature AWS would compute for `request` (canonical request, string to sign, key chain)."""
    names = signed_headers.split(";")
    canonical_headers = "".join(f"{n}:{' '.join(request.headers.get(n, '').split())}\n" for n in names)
    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(request.query.items()))
    payload_hash = request.headers.get("x-amz-content-sha256") or hashlib.sha256(request.body).hexdigest()
    canonical = "\n".join([request.method, quote(request.path or "/", safe="/-_.~"), query,
                           canonical_headers, signed_headers, payload_hash])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", request.headers.get("x-amz-date", ""), scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), date), region), service), "aws4_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _error(status: int, kind: str, message: str, **headers: str) -> Reply:
    reply = Reply.json(status, {"__type": kind, "Message": message}, **headers)
    reply.content_type = CONTENT_TYPE
    reply.headers["x-amzn-RequestId"] = str(uuid.uuid4())
    return reply


class RekognitionFake(FakeServer):
    """DetectLabels over awsJson1.1; accepts one access key / secret key pair."""

    provider = "rekognition"
    default_limits = REKOGNITION_LIMITS

    def __init__(self, *args, access_key: str = DEFAULT_ACCESS_KEY, secret_key: str = DEFAULT_SECRET_KEY,
                 region: str = "us-east-1", model_version: str = "3.0", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.access_key, self.secret_key, self.region = access_key, secret_key, region
        self.model_version = model_version
        """`LabelModelVersion` of every answer; give a fake with another `variant` another version."""

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL_REKOGNITION": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_DEFAULT_REGION": self.region}

    def internal_error(self) -> Reply:
        return _error(500, "InternalServerError", "Internal server error")

    def handle(self, request: FakeRequest) -> Reply:
        if request.method != "POST" or request.path != "/":
            return _error(404, "UnknownOperationException", f"no route for {request.method} {request.path}")
        if request.headers.get("x-amz-target") != TARGET:
            return _error(400, "UnknownOperationException",
                          f"X-Amz-Target {request.headers.get('x-amz-target')!r} is not {TARGET}")
        if not request.headers.get("content-type", "").startswith(CONTENT_TYPE):
            return _error(400, "SerializationException", f"Content-Type must be {CONTENT_TYPE}")
        denied = self._check_signature(request)
        if denied:
            return denied
        fault = self.begin_call()
        if fault == "quota":
            return _error(400, "LimitExceededException", "An Amazon Rekognition service limit was exceeded.")
        if fault == "throttle":  # DetectLabels API reference: ThrottlingException is HTTP 500
            return _error(500, "ThrottlingException", "Rate exceeded", **self.throttle_headers())
        if fault == "qps":
            return _error(400, "ProvisionedThroughputExceededException",
                          "Provisioned Rate exceeded.", **self.throttle_headers())
        if fault == "unavailable":
            return self.internal_error()
        return self._detect_labels(request)

    def _check_signature(self, request: FakeRequest) -> Reply | None:
        match = _AUTH.fullmatch(request.headers.get("authorization", "").strip())
        if not match:
            return _error(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
        if match["key"] != self.access_key or self.faults.bad_credentials:
            return _error(400, "UnrecognizedClientException",
                          "The security token included in the request is invalid.")
        if match["service"] != "rekognition":
            return _error(400, "InvalidSignatureException",
                          "Credential should be scoped to correct service: 'rekognition'.")
        expected = sigv4_signature(request, self.secret_key, match["date"], match["region"],
                                   match["service"], match["signed"])
        if not hmac.compare_digest(expected, match["sig"]):
            return _error(400, "InvalidSignatureException",
                          "The request signature we calculated does not match the signature you provided. "
                          "Check your AWS Secret Access Key and signing method. "
                          "Consult the service documentation for details.")
        return None

    def _detect_labels(self, request: FakeRequest) -> Reply:
        try:
            params = json.loads(request.body or b"{}")
            image = base64.b64decode(params["Image"]["Bytes"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error):
            return _error(400, "InvalidParameterException", "Request has invalid parameters")
        max_labels = int(params.get("MaxLabels", 1000))
        min_confidence = float(params.get("MinConfidence", 55.0))
        try:
            check_image(image, self.limits, self.provider)
            labels = self.answer_labels(image)
        except ImageTooLarge:
            return _error(400, "ImageTooLargeException", "Image size is too large.")
        except (UnsupportedFormat, NotAnImage):
            return _error(400, "InvalidImageFormatException", "Request has invalid image format")
        except TooManyPixels:
            return _error(400, "InvalidParameterException", "Input image dimensions exceed maximum dimension "
                                                            "size of 10000 pixels")
        except BadImage:
            return _error(400, "InvalidParameterException", "Request has invalid parameters")
        found = [{"Name": name.title(), "Confidence": round(score * 100, 4), "Instances": [], "Parents": [],
                  "Aliases": [], "Categories": []}
                 for name, score in labels if score * 100 >= min_confidence][:max_labels]
        return Reply(200, json.dumps({"Labels": found, "LabelModelVersion": self.model_version}).encode(), CONTENT_TYPE,
                     {"x-amzn-RequestId": str(uuid.uuid4())})
