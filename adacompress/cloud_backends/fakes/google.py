"""Fake Google Cloud Vision `v1/images:annotate`: API key auth, request-level and per-image errors.

The key is accepted in the `X-Goog-Api-Key` header (what our client sends) or as `?key=`, as Google does.

Request-level failures use Google's `{"error": {"code", "message", "status", "details"}}` with
the HTTP status; image problems come back inside `responses[i].error` with HTTP 200, as the
real API does. Label `mid`s are synthetic (`/m/fake<class index>`), not Knowledge Graph ids.
"""

from __future__ import annotations

import base64
import binascii
import json

from adacompress.cloud_backends.fakes.server import FakeRequest, FakeServer, Reply
from adacompress.cloud_backends.limits import GOOGLE_LIMITS, check_image
from adacompress.cloud_backends.local import CLASS_NAMES
from adacompress.errors import BadImage

PATH = "/v1/images:annotate"
DEFAULT_API_KEY = "AIzaFakeGoogleVisionKey0adacompress"
MAX_IMAGES_PER_REQUEST = 16
_CLASS_INDEX = {name: i for i, name in enumerate(CLASS_NAMES)}


def _error(code: int, status: str, message: str, details: list | None = None, **headers: str) -> Reply:
    return Reply.json(code, {"error": {"code": code, "message": message, "status": status,
                                       "details": details or []}}, **headers)


def _quota_details(limit: str) -> list[dict]:
    return [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED",
             "domain": "googleapis.com", "metadata": {"service": "vision.googleapis.com", "quota_limit": limit}}]


class GoogleFake(FakeServer):
    """Accepts one API key."""

    provider = "google"
    default_limits = GOOGLE_LIMITS

    def __init__(self, *args, api_key: str = DEFAULT_API_KEY, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.api_key = api_key

    def env(self) -> dict[str, str]:
        return {"GOOGLE_VISION_ENDPOINT": self.endpoint, "GOOGLE_VISION_API_KEY": self.api_key}

    def internal_error(self) -> Reply:
        return _error(503, "UNAVAILABLE", "The service is currently unavailable.")

    def handle(self, request: FakeRequest) -> Reply:
        if request.path != PATH or request.method != "POST":
            return _error(404, "NOT_FOUND", f"The requested URL {request.path} was not found on this server.")
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return _error(403, "PERMISSION_DENIED", "The request is missing a valid API key.")
        if key != self.api_key or self.faults.bad_credentials:
            return _error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                          [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                            "domain": "googleapis.com"}])
        if len(request.body) > GOOGLE_LIMITS.max_request_bytes:
            return _error(400, "INVALID_ARGUMENT",
                          f"Request payload size exceeds the limit: {GOOGLE_LIMITS.max_request_bytes} bytes.")
        fault = self.begin_call()
        if fault == "quota":
            return _error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Requests' and limit "
                          "'Requests per day' of service 'vision.googleapis.com'.",
                          _quota_details("DefaultRequestsPerDayPerProject"))
        if fault in ("throttle", "qps"):
            return _error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Requests' and limit "
                          "'Requests per minute' of service 'vision.googleapis.com'.",
                          _quota_details("DefaultRequestsPerMinutePerProject"), **self.throttle_headers())
        if fault == "unavailable":
            return self.internal_error()
        try:
            requests = json.loads(request.body)["requests"]
        except (ValueError, KeyError, TypeError):
            return _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        if len(requests) > MAX_IMAGES_PER_REQUEST:
            return _error(400, "INVALID_ARGUMENT", f"At most {MAX_IMAGES_PER_REQUEST} images per request.")
        return Reply.json(200, {"responses": [self._annotate(item) for item in requests]})

    def _annotate(self, item: dict) -> dict:
        features = {f.get("type"): f.get("maxResults", 10) for f in item.get("features", [])}
        if "LABEL_DETECTION" not in features:
            return {}
        try:
            image = base64.b64decode(item["image"]["content"], validate=True)
            check_image(image, self.limits, self.provider)
            labels = self.answer_labels(image)
        except (KeyError, TypeError, ValueError, binascii.Error, BadImage):
            return {"error": {"code": 3, "message": "Bad image data."}}
        return {"labelAnnotations": [
            {"mid": f"/m/fake{_CLASS_INDEX.get(name, 0):04d}", "description": name.title(),
             "score": round(score, 6), "topicality": round(score, 6)}
            for name, score in labels[: int(features["LABEL_DETECTION"])]]}
