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
import json
import threading
import time
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError

from adacompress.cloud_backends.answers import read_labels
from adacompress.cloud_backends.base import (
    AuthError,
    BackendUnavailable,
    Label,
    QuotaExhausted,
    Throttled,
    UnexpectedAnswer,
    VisionBackend,
)
from adacompress.cloud_backends.deadline import DeadlineExceeded, budget_s, require_time
from adacompress.cloud_backends.endpoints import check_endpoint
from adacompress.cloud_backends.http import account_digest
from adacompress.cloud_backends.limits import REKOGNITION_LIMITS, ImageLimits, check_image
from adacompress.cloud_backends.redact import protect_library_loggers, redact, register_secret
from adacompress.cloud_backends.registry import register_backend
from adacompress.cloud_backends.retry import parse_retry_after
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
_TRANSIENT = {"InternalServerError", "ServiceUnavailable", "ServiceUnavailableException"}


def _retry_after(headers: dict[str, str]) -> float | None:
    """`x-amz-retry-after` (milliseconds) or `Retry-After` (seconds or an HTTP date), or None."""
    try:
        return float(headers["x-amz-retry-after"]) / 1000.0
    except (KeyError, ValueError):
        return parse_retry_after(headers.get("retry-after"))


def map_client_error(exc: ClientError) -> Exception:
    """The typed error for a Rekognition error response."""
    error = exc.response.get("Error", {})
    code, message = error.get("Code", "Unknown"), redact(error.get("Message", ""))
    metadata = exc.response.get("ResponseMetadata", {})
    status = metadata.get("HTTPStatusCode", 0)
    text = f"rekognition: {code}: {message}"
    if code in _THROTTLING:
        return Throttled(text, retry_after_s=_retry_after(metadata.get("HTTPHeaders", {})))
    if code == "LimitExceededException":
        return QuotaExhausted(text)
    if code in _AUTH:
        return AuthError(f"{text} (check the AWS credentials chain and IAM permission rekognition:DetectLabels)")
    if code in _BAD_IMAGE:
        return _BAD_IMAGE[code](text)
    if code in _TRANSIENT or status >= 500:
        return BackendUnavailable(text)
    return UnexpectedAnswer(f"rekognition: HTTP {status} with error code {code!r} ({message}), which DetectLabels "
                            "does not return; check that AWS_ENDPOINT_URL_REKOGNITION or endpoint_url points at "
                            "Rekognition")


def _check_answer(response_dict: dict[str, Any], **_: Any) -> None:
    """Refuse a 2xx reply that is not DetectLabels' answer before botocore parses it (it crashes or guesses)."""
    status = response_dict.get("status_code", 0)
    if status >= 300:
        return  # an error reply: botocore turns it into a ClientError for `map_client_error`
    try:
        body = json.loads(response_dict.get("body") or b"null")
    except ValueError:
        body = None
    labels = body.get("Labels") if isinstance(body, dict) else None
    if not isinstance(labels, list) or not all(isinstance(label, dict) for label in labels):
        text = redact(str(response_dict.get("body", b""))[:120])
        raise UnexpectedAnswer(f"rekognition: HTTP {status} with {text}, which is not DetectLabels' answer (no "
                               "`Labels` list); check that AWS_ENDPOINT_URL_REKOGNITION or endpoint_url points at "
                               "Rekognition")


class _Ticket:
    """One caller's claim on a worker: a request is sent only while its caller still waits."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.abandoned = False
        self.sent = False
        self.lock = threading.Lock()

    def claim(self) -> bool:
        """Mark the request sent; False if the caller gave up (or its deadline passed) first."""
        with self.lock:
            if self.abandoned or (self.deadline is not None and time.monotonic() >= self.deadline):
                return False
            self.sent = True
            return True

    def abandon(self) -> bool:
        """The caller leaves; return whether its request had already been sent."""
        with self.lock:
            self.abandoned = True
            return self.sent


class RekognitionBackend(VisionBackend):
    """`detect_labels(Image={"Bytes": ...}, MaxLabels, MinConfidence)`; Confidence / 100 as the score."""

    name = "rekognition"
    reports_model_version = True

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
        self._credentials = session.get_credentials()
        if self._credentials is None:
            raise AuthError("rekognition: no AWS credentials found in the standard chain (AWS_ACCESS_KEY_ID "
                            "and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials, SSO, instance role)")
        frozen = self._register_credentials()
        config = Config(retries={"mode": "standard", "total_max_attempts": 1},
                        connect_timeout=connect_timeout_s, read_timeout=read_timeout_s)
        self._client = session.client("rekognition", region_name=region, endpoint_url=endpoint_url,
                                      config=config)
        # Role, SSO and instance credentials rotate: register whatever each request was signed with,
        # after signing and before botocore logs the request.
        self._client.meta.events.register_last("request-created.rekognition", self._register_signed)
        self._client.meta.events.register("before-parse.rekognition.DetectLabels", _check_answer)
        self.endpoint = check_endpoint(self._client.meta.endpoint_url, self.name,
                                       "AWS_ENDPOINT_URL_REKOGNITION or endpoint_url")
        self.account = account_digest(self.endpoint, region, frozen.access_key)
        self.read_timeout_s = read_timeout_s
        # boto3 cannot shorten a read timeout per call, so the deadline is enforced by waiting on a
        # worker; a request still queued when its caller gives up is never sent.
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="rekognition")
        protect_library_loggers()

    def _register_credentials(self) -> Any:
        frozen = self._credentials.get_frozen_credentials()
        for secret in (frozen.access_key, frozen.secret_key, frozen.token):
            register_secret(secret)
        return frozen

    def _register_signed(self, request: Any, **_: Any) -> None:
        token = request.headers.get("X-Amz-Security-Token")
        register_secret(token.decode() if isinstance(token, bytes) else token)
        self._register_credentials()

    def cache_params(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "max_labels": self.max_labels, "min_score": self.min_score}

    def model_version(self, raw: dict[str, Any]) -> str | None:
        version = raw.get("LabelModelVersion")
        return str(version) if version else None

    def _recognize(self, image_bytes: bytes) -> tuple[list[Label], dict[str, Any]]:
        check_image(image_bytes, self.limits, self.name)
        left = require_time(self.name, "calling DetectLabels")
        ticket = _Ticket(None if left is None else time.monotonic() + left)
        if left is None:
            return self._send(image_bytes, ticket)
        future = self._pool.submit(self._send, image_bytes, ticket)
        try:
            return future.result(timeout=left)
        except concurrent.futures.TimeoutError as exc:
            if ticket.abandon():
                self.stats.add(abandoned=1)  # sent: the provider answers (and bills) it all the same
            future.cancel()
            raise DeadlineExceeded(f"rekognition: no answer from {self.endpoint} within the call's "
                                   f"{budget_s():.1f} s deadline") from exc

    def _send(self, image_bytes: bytes, ticket: _Ticket) -> tuple[list[Label], dict[str, Any]]:
        """One DetectLabels request, unless its caller has already given up; counts what it sends and gets."""
        if not ticket.claim():
            raise DeadlineExceeded("rekognition: not sent: the caller's deadline passed while the request waited "
                                   "for a free worker")
        self.stats.add(sent=1)
        try:
            response = self._client.detect_labels(Image={"Bytes": image_bytes}, MaxLabels=self.max_labels,
                                                  MinConfidence=self.min_score * 100.0)
        except ClientError as exc:
            raise map_client_error(exc) from exc
        except NoCredentialsError as exc:
            raise AuthError("rekognition: no AWS credentials found in the standard chain") from exc
        except HTTPClientError as exc:
            raise BackendUnavailable(f"rekognition: {type(exc).__name__}: {redact(str(exc))}") from exc
        raw = {key: value for key, value in response.items() if key != "ResponseMetadata"}
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 200)
        labels = read_labels(raw.get("Labels"), "Name", "Confidence", 100.0,
                             f"rekognition: the HTTP {status} answer's `Labels`")
        self.stats.add(answered=1)
        return labels, raw

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()


@register_backend("rekognition")
def _make_rekognition(**options: Any) -> VisionBackend:
    return build_stack(RekognitionBackend, options)
