"""Baidu `advanced_general` and its OAuth token route on the wire; errors as `error_code` bodies at HTTP 200.

The recognition call is a urlencoded form (`image=<base64>`) with `?access_token=`; the token
route takes the `client_credentials` grant in the query or the form. The token reply must carry
`brain_all_scope`: without it the official SDK switches to BCE request signing.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from adacompress.cloud_backends.base import Label
from adacompress.cloud_backends.limits import BAIDU_LIMITS, ImageLimits, check_image, check_request_size
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
from adacompress.errors import BadImage, ImageTooLarge, NotAnImage, UnsupportedFormat

ROUTE = Route("/rest/2.0/image-classify/v2/advanced_general")
TOKEN_ROUTE = Route("/oauth/2.0/token", ("GET", "POST"))
"""The docs recommend POST; the official SDK uses GET."""
TOKEN_SCOPE = "public brain_all_scope vis-classify_dishes vis-classify_car brain_advanced_general_classify"
MAX_RESULTS = 5
"""advanced_general answers its top five keywords."""
ERRORS = {
    1: "Unknown error", 2: "Service temporarily unavailable", 3: "Unsupported openapi method",
    4: "Open api request limit reached", 15: "app not exsits or create failed",
    17: "Open api daily request limit reached",
    18: "Open api qps request limit reached", 100: "Invalid parameter",
    110: "Access token invalid or no longer valid", 111: "Access token expired",
    216100: "invalid param", 216101: "not enough param", 216200: "empty image", 216201: "image format error",
    216202: "image size error", 216400: "backend error", 216401: "internal error", 216500: "unknown error",
    216630: "recognize error", 282000: "internal error", 282001: "logic backend error",
}
_KINDS = {
    ErrorKind.BAD_REQUEST: 216100, ErrorKind.BAD_IMAGE: 216201, ErrorKind.IMAGE_TOO_LARGE: 216202,
    ErrorKind.THROTTLED: 18, ErrorKind.RATE_LIMITED: 18, ErrorKind.QUOTA_EXCEEDED: 17,
    ErrorKind.UNAUTHORIZED: 110, ErrorKind.INTERNAL: 282000, ErrorKind.UNAVAILABLE: 2, ErrorKind.NOT_FOUND: 3,
}


def error(code: int, message: str | None = None, headers: Mapping[str, str] | None = None) -> WireReply:
    """Baidu's error body for `code` (HTTP 200, as Baidu sends them); codes beyond `ErrorKind`, e.g. 111."""
    return WireReply.json(200, {"error_code": code, "error_msg": message or ERRORS[code],
                                "log_id": secrets.randbits(63)}, headers=headers)


def error_reply(kind: ErrorKind, message: str | None = None, retry_after_s: float | None = None) -> WireReply:
    """Baidu's error for `kind`; Baidu itself sends no Retry-After, so one is added only when given."""
    return error(_KINDS[kind], message, retry_after_headers(retry_after_s))


def _urlencoded(body: bytes) -> dict[str, str]:
    return dict(parse_qsl(body.decode("latin-1"), keep_blank_values=True))


def read_access_token(request: WireRequest) -> str:
    """The `access_token` query parameter, or error 100 when it is missing."""
    token = request.query.get("access_token")
    if not token:
        raise WireError(error(100))
    return token


def credentials(request: WireRequest) -> dict[str, str]:
    """The access token the client got from the token route (whether it is valid is the server's to say)."""
    return {"access_token": read_access_token(request)}


def image_error_reply(exc: BadImage, params: Mapping[str, Any] | None = None) -> WireReply:
    """216201 for what is not a readable JPEG/PNG/BMP, 216202 for a size or dimension out of range."""
    return error(216201 if isinstance(exc, UnsupportedFormat | NotAnImage) else 216202)


def parse_recognition(request: WireRequest, limits: ImageLimits = BAIDU_LIMITS) -> RecognitionRequest:
    """The form's `image` (base64), checked as Baidu checks it: present, not blank, its size, decodable, the limits."""
    form = _urlencoded(request.body)
    if "image" not in form:
        raise WireError(error(216101))
    if not form["image"]:
        raise WireError(error(216200))
    try:
        check_request_size(len(form["image"]), limits, "baidu")
        image = base64.b64decode(form["image"], validate=True)
    except ImageTooLarge as exc:
        raise WireError(image_error_reply(exc)) from exc
    except (binascii.Error, ValueError):
        raise WireError(error(216201)) from None
    try:
        check_image(image, limits, "baidu")
    except BadImage as exc:
        raise WireError(image_error_reply(exc)) from exc
    return RecognitionRequest(image, {})


def labels_reply(labels: Sequence[Label], params: Mapping[str, Any] | None = None, *, root: str = "") -> WireReply:
    """advanced_general's answer: the top `MAX_RESULTS` keywords with scores 0..1; `root` is Baidu's category."""
    results = [{"keyword": label.name, "score": round(label.score, 6), "root": root} for label in labels[:MAX_RESULTS]]
    return WireReply.json(200, {"log_id": secrets.randbits(63), "result_num": len(results), "result": results})


@dataclass(frozen=True)
class TokenRequest:
    """A `client_credentials` grant: the app's API key and secret key."""

    client_id: str
    client_secret: str


def parse_token_request(request: WireRequest) -> TokenRequest:
    """The grant from the query or the form (either works), or OAuth's 400 `unsupported_grant_type`."""
    params = {**request.query, **_urlencoded(request.body)}
    if params.get("grant_type") != "client_credentials":
        raise WireError(WireReply.json(400, {"error": "unsupported_grant_type",
                                             "error_description": "The authorization grant type is not supported"}))
    return TokenRequest(params.get("client_id", ""), params.get("client_secret", ""))


def token_error_reply(unknown_client: bool) -> WireReply:
    """OAuth's 401 `invalid_client`: an unknown client id, or a known one with the wrong secret."""
    description = "unknown client id" if unknown_client else "Client authentication failed"
    return WireReply.json(401, {"error": "invalid_client", "error_description": description})


def check_client(grant: TokenRequest, api_key: str, secret_key: str) -> None:
    """Refuse a grant whose keys are not `api_key` / `secret_key`, as Baidu's token route does."""
    if grant.client_id != api_key:
        raise WireError(token_error_reply(unknown_client=True))
    if grant.client_secret != secret_key:
        raise WireError(token_error_reply(unknown_client=False))


def new_access_token(ttl_s: int, app_id: str = "fake") -> str:
    """A fresh token shaped like Baidu's (`24.<hex>.<ttl>.<issued>.<n>-<app id>`)."""
    return f"24.{secrets.token_hex(16)}.{ttl_s}.{int(time.time())}.{secrets.randbelow(10**9)}-{app_id}"


def token_reply(access_token: str, expires_in_s: int, scope: str = TOKEN_SCOPE) -> WireReply:
    """The token route's answer; keep `brain_all_scope` in `scope` or the SDK stops using the token."""
    return WireReply.json(200, {"refresh_token": f"25.{secrets.token_hex(16)}", "expires_in": expires_in_s,
                                "session_key": secrets.token_hex(16), "access_token": access_token,
                                "scope": scope, "session_secret": secrets.token_hex(16)})


FORMAT = one_image_format("baidu", ROUTE, BAIDU_LIMITS, credentials, parse_recognition, labels_reply,
                          image_error_reply, error_reply, other_routes=(TOKEN_ROUTE,))
