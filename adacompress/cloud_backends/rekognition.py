"""Amazon Rekognition DetectLabels through boto3, image bytes inline (no S3 round trip).

Region and credentials come from the standard AWS chain (environment, profile, SSO, instance
role). The endpoint follows `AWS_ENDPOINT_URL_REKOGNITION` (botocore reads it natively) or the
`endpoint_url` option. botocore's own retries are off (`total_max_attempts=1`): our retry layer
owns retries, the budget, the breaker and the deadline, and two stacked retry loops would
multiply attempts (4 x 4 = 16) behind its back. Timeouts are pinned (connect 3 s, read 15 s;
boto3's default is 60/60), whatever `AWS_NEW_RETRIES_2026` or config files say.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError

from adacompress.cloud_backends.base import (
    AuthError,
    BackendError,
    BackendUnavailable,
    Label,
    QuotaExhausted,
    Throttled,
    VisionBackend,
)
from adacompress.cloud_backends.deadline import DeadlineExceeded, budget_s, require_time
from adacompress.cloud_backends.limits import REKOGNITION_LIMITS, ImageLimits, check_image
from adacompress.cloud_backends.redact import protect_library_loggers, redact, register_secret
from adacompress.cloud_backends.registry import register_backend
from adacompress.cloud_backends.stack import build_stack
from adacompress.config import settings
from adacompress.errors import BadImage, ImageTooLarge, UnsupportedFormat

_THROTTLING = {"ThrottlingException", "ProvisionedThroughputExceededException", "TooManyRequestsException",
               "Throttling", "RequestLimitExceeded"}
_AUTH = {"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
         "MissingAuthenticationTokenException", "ExpiredTokenException", "IncompleteSignature",
         "InvalidClientTokenId", "SignatureDoesNotMatch"}
_BAD_IMAGE = {"ImageTooLargeException": ImageTooLarge, "InvalidImageFormatException": UnsupportedFormat,
              "InvalidParameterException": BadImage}


def map_client_error(exc: ClientError) -> Exception:
    """The typed error for a Rekognition error response."""
    error = exc.response.get("Error", {})
    code, message = error.get("Code", "Unknown"), redact(error.get("Message", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    text = f"rekognition: {code}: {message}"
    if code in _THROTTLING:
        headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        after_ms = headers.get("x-amz-retry-after")
        after = float(after_ms) / 1000 if after_ms else (float(headers["retry-after"]) if "retry-after" in headers
                                                         else None)
        return Throttled(text, retry_after_s=after)
    if code == "LimitExceededException":
        return QuotaExhausted(text)
    if code in _AUTH:
        return AuthError(f"{text} (check the AWS credentials chain and IAM permission rekognition:DetectLabels)")
    if code in _BAD_IMAGE:
        return _BAD_IMAGE[code](text)
    if code in {"InternalServerError", "ServiceUnavailable", "ServiceUnavailableException"} or status >= 500:
        return BackendUnavailable(text)
    return BackendError(text)


class RekognitionBackend(VisionBackend):
    """`detect_labels(Image={"Bytes": ...}, MaxLabels, MinConfidence)`; Confidence / 100 as the score."""

    name = "rekognition"

    def __init__(self, region: str | None = None, endpoint_url: str | None = None,
                 connect_timeout_s: float = 3.0, read_timeout_s: float = 15.0, max_labels: int = 10,
                 min_score: float = 0.5, limits: ImageLimits | None = None) -> None:
        super().__init__(max_labels=max_labels, min_score=min_score)
        self.limits = limits or REKOGNITION_LIMITS
        session = boto3.session.Session()
        region = region or session.region_name or settings().aws_region
        if not region:
            raise AuthError("rekognition: no AWS region configured; set AWS_REGION (or AWS_DEFAULT_REGION, "
                            "or a region in the AWS profile) or pass region=")
        credentials = session.get_credentials()
        if credentials is None:
            raise AuthError("rekognition: no AWS credentials found in the standard chain (AWS_ACCESS_KEY_ID "
                            "and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials, SSO, instance role)")
        frozen = credentials.get_frozen_credentials()
        for secret in (frozen.access_key, frozen.secret_key, frozen.token):
            register_secret(secret)
        config = Config(retries={"mode": "standard", "total_max_attempts": 1},
                        connect_timeout=connect_timeout_s, read_timeout=read_timeout_s)
        self._client = session.client("rekognition", region_name=region, endpoint_url=endpoint_url,
                                      config=config)
        self.endpoint = self._client.meta.endpoint_url
        self.read_timeout_s = read_timeout_s
        # boto3 cannot shorten a read timeout per call, so the deadline is enforced by waiting
        # on a worker; an abandoned attempt ends by itself at `read_timeout_s`.
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="rekognition")
        protect_library_loggers()

    def cache_params(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "max_labels": self.max_labels, "min_score": self.min_score}

    def _recognize(self, image_bytes: bytes) -> tuple[list[Label], dict[str, Any]]:
        check_image(image_bytes, self.limits, self.name)
        left = require_time(self.name, "calling DetectLabels")
        if left is None:
            response = self._detect_labels(image_bytes)
        else:
            future = self._pool.submit(self._detect_labels, image_bytes)
            try:
                response = future.result(timeout=left)
            except concurrent.futures.TimeoutError as exc:
                raise DeadlineExceeded(f"rekognition: no answer from {self.endpoint} within the call's "
                                       f"{budget_s():.1f} s deadline") from exc
        raw = {key: value for key, value in response.items() if key != "ResponseMetadata"}
        labels = [Label(item["Name"], float(item["Confidence"]) / 100.0) for item in raw.get("Labels", [])]
        return labels, raw

    def _detect_labels(self, image_bytes: bytes) -> dict[str, Any]:
        try:
            return self._client.detect_labels(Image={"Bytes": image_bytes}, MaxLabels=self.max_labels,
                                              MinConfidence=self.min_score * 100.0)
        except ClientError as exc:
            raise map_client_error(exc) from exc
        except NoCredentialsError as exc:
            raise AuthError("rekognition: no AWS credentials found in the standard chain") from exc
        except HTTPClientError as exc:
            raise BackendUnavailable(f"rekognition: {type(exc).__name__}: {redact(str(exc))}") from exc

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()


@register_backend("rekognition")
def _make_rekognition(**options: Any) -> VisionBackend:
    return build_stack(RekognitionBackend, options)
