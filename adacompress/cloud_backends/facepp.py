"""Face++ (Megvii) scene and object recognition, `imagepp/beta/detectsceneandobject`, over httpx.

Keys come from `FACEPP_API_KEY` / `FACEPP_API_SECRET` (sent in the form body, never in the URL),
the endpoint from `FACEPP_ENDPOINT` (default https://api-cn.faceplusplus.com, the only host the
official SDKs use for this API). `objects` become labels with confidence / 100, as AdaCompress
did; `scenes=True` adds the scene labels too.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlencode

import httpx

from adacompress.cloud_backends.answers import read_labels
from adacompress.cloud_backends.base import (
    AuthError,
    BackendError,
    BackendUnavailable,
    Label,
    QuotaExhausted,
    Throttled,
    UnexpectedAnswer,
    VisionBackend,
)
from adacompress.cloud_backends.http import HttpBackend, account_digest, env_secret, retry_after_s
from adacompress.cloud_backends.limits import FACEPP_LIMITS, check_image, check_request_size
from adacompress.cloud_backends.redact import redact
from adacompress.cloud_backends.registry import register_backend
from adacompress.cloud_backends.stack import build_stack
from adacompress.errors import BadImage, ImageTooLarge, UnsupportedFormat

PATH = "/imagepp/beta/detectsceneandobject"
_BAD_IMAGE: dict[str, type[BadImage]] = {
    "IMAGE_ERROR_UNSUPPORTED_FORMAT": UnsupportedFormat, "INVALID_IMAGE_SIZE": BadImage,
    "IMAGE_FILE_TOO_LARGE": ImageTooLarge,
}


def map_error(status: int, message: str, response: httpx.Response | None = None) -> Exception:
    """Our typed error for a Face++ `error_message` (`KIND` or `KIND:detail`) and its HTTP status."""
    kind, _, detail = message.partition(":")
    text = f"facepp: {redact(message)} (HTTP {status})"
    if kind == "CONCURRENCY_LIMIT_EXCEEDED":
        return Throttled(text, None if response is None else retry_after_s(response.headers))
    if kind == "AUTHORIZATION_ERROR" and "balance" in detail.lower():
        return QuotaExhausted(f"{text}; top up the Face++ account")
    if kind in ("AUTHENTICATION_ERROR", "AUTHORIZATION_ERROR"):
        return AuthError(f"{text}; check FACEPP_API_KEY and FACEPP_API_SECRET")
    if kind in _BAD_IMAGE:
        return _BAD_IMAGE[kind](text)
    if kind in ("INTERNAL_ERROR", "IMAGE_DOWNLOAD_TIMEOUT") or status >= 500:
        return BackendUnavailable(text)
    return BackendError(text)


class FaceppBackend(HttpBackend):
    """Form POST of `api_key`, `api_secret`, `image_base64`; objects (and scenes) as labels."""

    name = "facepp"
    endpoint_env = "FACEPP_ENDPOINT"
    default_endpoint = "https://api-cn.faceplusplus.com"
    default_limits = FACEPP_LIMITS

    def __init__(self, scenes: bool = False, **options: Any) -> None:
        super().__init__(**options)
        self.scenes = scenes
        self._api_key = env_secret("FACEPP_API_KEY", self.name)
        self._api_secret = env_secret("FACEPP_API_SECRET", self.name)
        self.account = account_digest(self.endpoint, self._api_key)

    def cache_params(self) -> dict[str, Any]:
        return {**super().cache_params(), "scenes": self.scenes}

    def _recognize(self, image_bytes: bytes) -> tuple[list[Label], dict[str, Any]]:
        check_image(image_bytes, self.limits, self.name)
        form = urlencode({"api_key": self._api_key, "api_secret": self._api_secret,
                          "image_base64": base64.b64encode(image_bytes).decode("ascii")}).encode("ascii")
        check_request_size(len(form), self.limits, self.name)
        response = self._post(PATH, content=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
        if response.status_code == 413:
            raise ImageTooLarge(f"facepp: the server refused the {len(form):,}-byte request as too large "
                                f"(HTTP 413); its limit is {FACEPP_LIMITS.max_request_bytes:,} bytes")
        try:
            body = self.json_object(response, "detectsceneandobject")
        except UnexpectedAnswer as exc:
            if response.status_code >= 500:
                raise BackendUnavailable(f"facepp: HTTP {response.status_code} without a JSON error") from exc
            raise
        if "error_message" in body or response.status_code >= 500:
            raise map_error(response.status_code, str(body.get("error_message", "")), response)
        if response.status_code != 200:
            raise self.unexpected(response, "detectsceneandobject")
        found: dict[str, float] = {}
        where = "facepp: detectsceneandobject's HTTP 200 answer: `{}`"
        labels = read_labels(body.get("objects"), "value", "confidence", 100.0, where.format("objects"))
        if self.scenes:
            labels += read_labels(body.get("scenes", []), "value", "confidence", 100.0, where.format("scenes"))
        for label in labels:
            found[label.name] = max(label.score, found.get(label.name, 0.0))
        return self.answered([Label(name, score) for name, score in found.items()], body)


@register_backend("facepp")
def _make_facepp(**options: Any) -> VisionBackend:
    return build_stack(FaceppBackend, options)
