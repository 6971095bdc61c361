"""Fake Baidu `advanced_general` with its OAuth token endpoint; errors as `error_code` bodies at HTTP 200.

The token reply carries `brain_all_scope` (without it the official SDK switches to BCE request
signing). Tokens can be expired (error 111) or revoked (110) on demand to exercise refresh.
Keywords are English ImageNet names; the real API answers in Chinese.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from urllib.parse import parse_qsl

from adacompress.cloud_backends.fakes.server import FakeRequest, FakeServer, Reply
from adacompress.cloud_backends.limits import BAIDU_LIMITS, check_image, check_request_size
from adacompress.errors import BadImage, ImageTooLarge, NotAnImage, UnsupportedFormat

DEFAULT_API_KEY = "fakeBaiduApiKey0adacompress"
DEFAULT_SECRET_KEY = "fakeBaiduSecretKey0adacompress"
TOKEN_SCOPE = "public brain_all_scope vis-classify_dishes vis-classify_car brain_advanced_general_classify"
ERRORS = {
    1: "Unknown error", 2: "Service temporarily unavailable", 3: "Unsupported openapi method",
    4: "Open api request limit reached", 15: "app not exsits or create failed",
    17: "Open api daily request limit reached",
    18: "Open api qps request limit reached", 100: "Invalid parameter",
    110: "Access token invalid or no longer valid", 111: "Access token expired",
    216101: "not enough param", 216200: "empty image", 216201: "image format error",
    216202: "image size error", 216400: "backend error", 216401: "internal error", 216500: "unknown error",
    216630: "recognize error", 282000: "internal error", 282001: "logic backend error",
}


def _error(code: int) -> Reply:
    return Reply.json(200, {"error_code": code, "error_msg": ERRORS[code], "log_id": secrets.randbits(63)})


class BaiduFake(FakeServer):
    """Token endpoint plus `advanced_general`; accepts one API key / secret key pair."""

    provider = "baidu"
    default_limits = BAIDU_LIMITS

    def __init__(self, *args, api_key: str = DEFAULT_API_KEY, secret_key: str = DEFAULT_SECRET_KEY,
                 token_ttl_s: int = 2_592_000, token_scope: str = TOKEN_SCOPE, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.api_key, self.secret_key, self.token_ttl_s = api_key, secret_key, token_ttl_s
        self.token_scope = token_scope
        self.tokens: dict[str, float] = {}
        """Issued token -> expiry (Unix time); removed tokens are revoked (error 110)."""
        self.token_requests = 0
        self.internal_error_code = 282000
        """The error code `faults.fail_next` answers with: any of Baidu's server-side codes."""

    def env(self) -> dict[str, str]:
        return {"BAIDU_ENDPOINT": self.endpoint, "BAIDU_API_KEY": self.api_key, "BAIDU_SECRET_KEY": self.secret_key}

    def internal_error(self) -> Reply:
        return _error(self.internal_error_code)

    def expire_tokens(self) -> None:
        """Every issued token is now expired: the next call answers 111."""
        with self._lock:
            self.tokens = {token: 0.0 for token in self.tokens}

    def revoke_tokens(self) -> None:
        """Every issued token is now unknown: the next call answers 110."""
        with self._lock:
            self.tokens.clear()

    def handle(self, request: FakeRequest) -> Reply:
        if request.path == "/oauth/2.0/token" and request.method in ("GET", "POST"):
            return self._token(request)
        if request.path == "/rest/2.0/image-classify/v2/advanced_general" and request.method == "POST":
            return self._advanced_general(request)
        return _error(3)

    def _token(self, request: FakeRequest) -> Reply:
        params = {**request.query, **dict(parse_qsl(request.body.decode("latin-1")))}
        with self._lock:
            self.token_requests += 1
        if params.get("grant_type") != "client_credentials":
            return Reply.json(400, {"error": "unsupported_grant_type",
                                    "error_description": "The authorization grant type is not supported"})
        if params.get("client_id") != self.api_key or self.faults.bad_credentials:
            return Reply.json(401, {"error": "invalid_client", "error_description": "unknown client id"})
        if params.get("client_secret") != self.secret_key:
            return Reply.json(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
        token = f"24.{secrets.token_hex(16)}.{self.token_ttl_s}.{int(time.time())}.{secrets.randbelow(10**9)}-fake"
        with self._lock:
            self.tokens[token] = time.time() + self.token_ttl_s
        return Reply.json(200, {"refresh_token": f"25.{secrets.token_hex(16)}", "expires_in": self.token_ttl_s,
                                "session_key": secrets.token_hex(16), "access_token": token,
                                "scope": self.token_scope, "session_secret": secrets.token_hex(16)})

    def _advanced_general(self, request: FakeRequest) -> Reply:
        token = request.query.get("access_token")
        if not token:
            return _error(100)
        with self._lock:
            expiry = self.tokens.get(token)
        if expiry is None or self.faults.bad_credentials:
            return _error(110)
        if time.time() >= expiry:
            return _error(111)
        fault = self.begin_call()
        if fault == "quota":
            return _error(17)
        if fault in ("throttle", "qps"):
            return _error(18)
        if fault == "unavailable":
            return self.internal_error()
        form = dict(parse_qsl(request.body.decode("latin-1")))
        if "image" not in form:
            return _error(216101)
        try:
            check_request_size(len(form["image"]), self.limits, self.provider)
            image = base64.b64decode(form["image"], validate=True)
            if not image:
                return _error(216200)
            check_image(image, self.limits, self.provider)
            labels = self.answer_labels(image)
        except (binascii.Error, ValueError, UnsupportedFormat, NotAnImage):
            return _error(216201)
        except (ImageTooLarge, BadImage):
            return _error(216202)
        results = [{"keyword": name, "score": round(score, 6), "root": "ImageNet"} for name, score in labels[:5]]
        return Reply.json(200, {"log_id": secrets.randbits(63), "result_num": len(results), "result": results})
