"""Amazon Rekognition DetectLabels on the wire: awsJson1.1 on `POST /`, SigV4, `{"__type", "Message"}` errors.

Errors carry the status the DetectLabels API reference gives (400; 500 for InternalServerError and
ThrottlingException), which botocore turns into the same `ClientError` codes as the real service.
Every reply carries an `x-amzn-RequestId`, as AWS's do. The signature check recomputes SigV4 from
the request as received, so a server must pass the client's own Host header, path, query and body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from adacompress.cloud_backends.base import Label
from adacompress.cloud_backends.limits import REKOGNITION_LIMITS, ImageLimits, check_image
from adacompress.cloud_backends.wire.common import (
    ErrorKind,
    RecognitionRequest,
    Route,
    WireError,
    WireReply,
    WireRequest,
    one_image_format,
    retry_after_headers,
)
from adacompress.errors import BadImage, ImageTooLarge, NotAnImage, TooManyPixels, UnsupportedFormat

TARGET = "RekognitionService.DetectLabels"
CONTENT_TYPE = "application/x-amz-json-1.1"
ROUTE = Route("/")
SERVICE = "rekognition"
DEFAULT_MAX_LABELS = 1000
DEFAULT_MIN_CONFIDENCE = 55.0
_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
                   r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[^,]+), ?Signature=(?P<sig>[0-9a-f]+)")
_KINDS: dict[ErrorKind, tuple[int, str, str]] = {
    ErrorKind.BAD_REQUEST: (400, "InvalidParameterException", "Request has invalid parameters"),
    ErrorKind.BAD_IMAGE: (400, "InvalidImageFormatException", "Request has invalid image format"),
    ErrorKind.IMAGE_TOO_LARGE: (400, "ImageTooLargeException", "Image size is too large."),
    ErrorKind.THROTTLED: (500, "ThrottlingException", "Rate exceeded"),  # HTTP 500 per the API reference
    ErrorKind.RATE_LIMITED: (400, "ProvisionedThroughputExceededException", "Provisioned Rate exceeded."),
    ErrorKind.QUOTA_EXCEEDED: (400, "LimitExceededException", "An Amazon Rekognition service limit was exceeded."),
    ErrorKind.UNAUTHORIZED: (400, "UnrecognizedClientException",
                             "The security token included in the request is invalid."),
    ErrorKind.INTERNAL: (500, "InternalServerError", "Internal server error"),
    ErrorKind.UNAVAILABLE: (500, "InternalServerError", "Internal server error"),
    ErrorKind.NOT_FOUND: (404, "UnknownOperationException", "Unknown operation"),
}


def aws_error(status: int, error_type: str, message: str, headers: Mapping[str, str] | None = None) -> WireReply:
    """An awsJson1.1 error reply: botocore reads `__type` as the error code."""
    return WireReply.json(status, {"__type": error_type, "Message": message}, CONTENT_TYPE,
                          {**(headers or {}), "x-amzn-RequestId": str(uuid.uuid4())})


def error_reply(kind: ErrorKind, message: str | None = None, retry_after_s: float | None = None) -> WireReply:
    """Rekognition's error for `kind`; `message` replaces the service's usual text."""
    status, error_type, usual = _KINDS[kind]
    return aws_error(status, error_type, message or usual, retry_after_headers(retry_after_s))


def check_operation(request: WireRequest) -> None:
    """The awsJson1.1 envelope: DetectLabels as the `X-Amz-Target`, the awsJson1.1 content type."""
    target = request.headers.get("x-amz-target")
    if target != TARGET:
        raise WireError(aws_error(400, "UnknownOperationException", f"X-Amz-Target {target!r} is not {TARGET}"))
    if not request.headers.get("content-type", "").startswith(CONTENT_TYPE):
        raise WireError(aws_error(400, "SerializationException", f"Content-Type must be {CONTENT_TYPE}"))


@dataclass(frozen=True)
class SigV4Auth:
    """The parts of a SigV4 `Authorization` header."""

    access_key: str
    date: str
    region: str
    service: str
    signed_headers: str
    signature: str


def read_auth(request: WireRequest) -> SigV4Auth:
    """The request's SigV4 credential scope and signature, or AWS's 403 when there is none."""
    match = _AUTH.fullmatch(request.headers.get("authorization", "").strip())
    if not match:
        raise WireError(aws_error(403, "MissingAuthenticationTokenException", "Missing Authentication Token"))
    return SigV4Auth(match["key"], match["date"], match["region"], match["service"], match["signed"], match["sig"])


def credentials(request: WireRequest) -> dict[str, str]:
    """The access key the client signed with (check the signature itself with `verify_sigv4`)."""
    check_operation(request)
    return {"access_key": read_auth(request).access_key}


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sigv4_signature(request: WireRequest, secret_key: str, date: str, region: str, service: str,
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


def verify_sigv4(request: WireRequest, secret_keys: Mapping[str, str]) -> str:
    """The access key of a correctly signed request, or `WireError` with AWS's refusal.

    `secret_keys` maps each accepted access key to its secret; an unknown key is refused as AWS
    refuses one (UnrecognizedClientException), a wrong signature as InvalidSignatureException.
    """
    auth = read_auth(request)
    secret = secret_keys.get(auth.access_key)
    if secret is None:
        raise WireError(error_reply(ErrorKind.UNAUTHORIZED))
    if auth.service != SERVICE:
        raise WireError(aws_error(400, "InvalidSignatureException",
                                  f"Credential should be scoped to correct service: '{SERVICE}'."))
    expected = sigv4_signature(request, secret, auth.date, auth.region, auth.service, auth.signed_headers)
    if not hmac.compare_digest(expected, auth.signature):
        raise WireError(aws_error(400, "InvalidSignatureException",
                                  "The request signature we calculated does not match the signature you provided. "
                                  "Check your AWS Secret Access Key and signing method. "
                                  "Consult the service documentation for details."))
    return auth.access_key


def image_error_reply(exc: BadImage, params: Mapping[str, Any] | None = None) -> WireReply:
    """Rekognition's refusal of an image, by what is wrong with it."""
    if isinstance(exc, ImageTooLarge):
        return error_reply(ErrorKind.IMAGE_TOO_LARGE)
    if isinstance(exc, UnsupportedFormat | NotAnImage):
        return error_reply(ErrorKind.BAD_IMAGE)
    if isinstance(exc, TooManyPixels):
        return aws_error(400, "InvalidParameterException",
                         "Input image dimensions exceed maximum dimension size of 10000 pixels")
    return error_reply(ErrorKind.BAD_REQUEST)


def parse_recognition(request: WireRequest, limits: ImageLimits = REKOGNITION_LIMITS) -> RecognitionRequest:
    """DetectLabels' image (`Image.Bytes`, base64) and its `max_labels` / `min_confidence` (0-100)."""
    check_operation(request)
    try:
        body = json.loads(request.body or b"{}")
        image = base64.b64decode(body["Image"]["Bytes"], validate=True)
        max_labels = int(body.get("MaxLabels", DEFAULT_MAX_LABELS))
        min_confidence = float(body.get("MinConfidence", DEFAULT_MIN_CONFIDENCE))
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise WireError(error_reply(ErrorKind.BAD_REQUEST)) from None
    try:
        check_image(image, limits, SERVICE)
    except BadImage as exc:
        raise WireError(image_error_reply(exc)) from exc
    return RecognitionRequest(image, {"max_labels": max_labels, "min_confidence": min_confidence})


def labels_reply(labels: Sequence[Label], params: Mapping[str, Any] | None = None, *,
                 model_version: str = "3.0") -> WireReply:
    """DetectLabels' answer: labels at or above `min_confidence`, at most `max_labels`, Confidence 0-100."""
    params = params or {}
    min_confidence = params.get("min_confidence", DEFAULT_MIN_CONFIDENCE)
    found = [{"Name": label.name, "Confidence": round(label.score * 100, 4), "Instances": [], "Parents": [],
              "Aliases": [], "Categories": []}
             for label in labels if label.score * 100 >= min_confidence][:params.get("max_labels", DEFAULT_MAX_LABELS)]
    return WireReply.json(200, {"Labels": found, "LabelModelVersion": model_version}, CONTENT_TYPE,
                          {"x-amzn-RequestId": str(uuid.uuid4())})


FORMAT = one_image_format(SERVICE, ROUTE, REKOGNITION_LIMITS, credentials, parse_recognition, labels_reply,
                          image_error_reply, error_reply)
