"""Google Cloud Vision `v1/images:annotate` with LABEL_DETECTION, over httpx.

The API key comes from `GOOGLE_VISION_API_KEY` and travels in the `X-Goog-Api-Key` header, never
in the URL (which proxies and access logs keep); the endpoint comes from `GOOGLE_VISION_ENDPOINT`
(default https://vision.googleapis.com). One image per request. Failures come two ways:
request-level (`{"error": {code, status, message}}` with an HTTP error status) and per image
(`responses[0].error` with HTTP 200); both map to our types. Any other reply is not an answer.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from adacompress.cloud_backends.answers import read_labels
from adacompress.cloud_backends.base import (
    AuthError,
    BackendError,
    BackendUnavailable,
    Label,
    Throttled,
    UnexpectedAnswer,
    VisionBackend,
)
from adacompress.cloud_backends.breaker import DailyQuotaExhausted, next_midnight, time_zone
from adacompress.cloud_backends.http import HttpBackend, account_digest, env_secret, retry_after_s
from adacompress.cloud_backends.limits import GOOGLE_LIMITS, check_image, check_request_size
from adacompress.cloud_backends.redact import redact
from adacompress.cloud_backends.registry import register_backend
from adacompress.cloud_backends.stack import build_stack
from adacompress.errors import BadImage, ImageTooLarge

PATH = "/v1/images:annotate"
QUOTA_ZONE = time_zone("America/Los_Angeles", -8.0)
"""Google's per-day quotas reset at midnight Pacific time."""
# google.rpc.Code values found in per-image errors.
_RPC_BAD_IMAGE = {3}
_RPC_THROTTLED = {8}
_RPC_TRANSIENT = {4, 10, 13, 14}
_RPC_AUTH = {7, 16}


def _is_daily(error: dict[str, Any]) -> bool:
    """Whether a RESOURCE_EXHAUSTED error is a per-day quota (vs a per-minute rate)."""
    details = json.dumps(error.get("details", []))
    return "per day" in str(error.get("message", "")).lower() or "PerDay" in details


def map_request_error(response: httpx.Response) -> Exception:
    """Our typed error for a request-level failure (HTTP status >= 400)."""
    status = response.status_code
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, dict):  # not Google's google.rpc.Status: a gateway, or not Google at all
        if status == 429:
            return Throttled("google: HTTP 429", retry_after_s(response.headers))
        if status >= 500:
            return BackendUnavailable(f"google: HTTP {status}")
        body = redact(response.text[:120].replace("\n", " "))
        return UnexpectedAnswer(f"google: images:annotate answered HTTP {status} with {body!r}, which is not "
                                "Google's error shape; check that GOOGLE_VISION_ENDPOINT points at Vision")
    text = f"google: HTTP {status} {error.get('status', '')}: {redact(str(error.get('message', '')))}"
    if status == 429 or error.get("status") == "RESOURCE_EXHAUSTED":
        if _is_daily(error):
            return DailyQuotaExhausted(f"{text}; the daily quota resets at midnight Pacific time",
                                       reset_at=next_midnight(QUOTA_ZONE))
        return Throttled(text, retry_after_s(response.headers))
    if status in (401, 403) or "API key" in text or "API_KEY" in json.dumps(error.get("details", [])):
        return AuthError(f"{text}; check GOOGLE_VISION_API_KEY and that the Vision API is enabled")
    if status == 400 and "payload size exceeds" in text:
        return ImageTooLarge(text)
    if status >= 500:
        return BackendUnavailable(text)
    return BackendError(text)


def map_image_error(error: dict[str, Any]) -> Exception:
    """Our typed error for `responses[i].error` (a google.rpc.Status)."""
    code = error.get("code")
    text = f"google: {redact(str(error.get('message', '')))} (rpc code {code})"
    if code in _RPC_BAD_IMAGE:
        return BadImage(text)
    if code in _RPC_THROTTLED:
        return Throttled(text)
    if code in _RPC_TRANSIENT:
        return BackendUnavailable(text)
    if code in _RPC_AUTH:
        return AuthError(text)
    return BackendError(text)


class GoogleVisionBackend(HttpBackend):
    """One `AnnotateImageRequest` with LABEL_DETECTION; `description` and `score` (0..1) as labels."""

    name = "google"
    endpoint_env = "GOOGLE_VISION_ENDPOINT"
    default_endpoint = "https://vision.googleapis.com"
    default_limits = GOOGLE_LIMITS

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._key = env_secret("GOOGLE_VISION_API_KEY", self.name)
        self.account = account_digest(self.endpoint, self._key)

    def _recognize(self, image_bytes: bytes) -> tuple[list[Label], dict[str, Any]]:
        check_image(image_bytes, self.limits, self.name)
        payload = json.dumps({"requests": [{
            "image": {"content": base64.b64encode(image_bytes).decode("ascii")},
            "features": [{"type": "LABEL_DETECTION", "maxResults": self.max_labels}],
        }]}).encode()
        check_request_size(len(payload), self.limits, self.name)
        response = self._post(PATH, content=payload,
                              headers={"Content-Type": "application/json", "X-Goog-Api-Key": self._key})
        if response.status_code >= 400:
            raise map_request_error(response)
        body = self.json_object(response, "images:annotate")
        responses = body.get("responses")
        if response.status_code != 200 or not isinstance(responses, list) or len(responses) != 1 \
                or not isinstance(responses[0], dict):
            raise self.unexpected(response, "images:annotate")
        first = responses[0]
        if "error" in first:
            raise map_image_error(first["error"] if isinstance(first["error"], dict) else {})
        # Google omits empty fields: an image with no labels answers `{}`.
        labels = read_labels(first.get("labelAnnotations", []), "description", "score", 1.0,
                             "google: images:annotate's HTTP 200 answer: `labelAnnotations`")
        return self.answered(labels, body)


@register_backend("google")
def _make_google(**options: Any) -> VisionBackend:
    return build_stack(GoogleVisionBackend, options)
