"""Fake Baidu `advanced_general` with its OAuth token endpoint; errors as `error_code` bodies at HTTP 200.

The wire format is `adacompress.cloud_backends.wire.baidu`. Tokens can be expired (error 111) or
revoked (110) on demand to exercise refresh. Keywords are English ImageNet names; the real API
answers in Chinese.
"""

from __future__ import annotations

import time
from typing import Any

from adacompress.cloud_backends.fakes.server import FakeServer
from adacompress.cloud_backends.wire import baidu
from adacompress.cloud_backends.wire.common import ErrorKind, WireReply, WireRequest

DEFAULT_API_KEY = "fakeBaiduApiKey0adacompress"
DEFAULT_SECRET_KEY = "fakeBaiduSecretKey0adacompress"


class BaiduFake(FakeServer):
    """Token endpoint plus `advanced_general`; accepts one API key / secret key pair."""

    provider = "baidu"
    wire = baidu.FORMAT
    sends_retry_after = False

    def __init__(self, *args, api_key: str = DEFAULT_API_KEY, secret_key: str = DEFAULT_SECRET_KEY,
                 token_ttl_s: int = 2_592_000, token_scope: str = baidu.TOKEN_SCOPE, **kwargs) -> None:
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

    def internal_error(self) -> WireReply:
        return baidu.error(self.internal_error_code)

    def expire_tokens(self) -> None:
        """Every issued token is now expired: the next call answers 111."""
        with self._lock:
            self.tokens = {token: 0.0 for token in self.tokens}

    def revoke_tokens(self) -> None:
        """Every issued token is now unknown: the next call answers 110."""
        with self._lock:
            self.tokens.clear()

    def handle(self, request: WireRequest) -> WireReply:
        if baidu.TOKEN_ROUTE.matches(request):
            return self._token(request)
        if not baidu.ROUTE.matches(request):
            return baidu.error_reply(ErrorKind.NOT_FOUND)
        token = baidu.read_access_token(request)
        with self._lock:
            expiry = self.tokens.get(token)
        if expiry is None or self.faults.bad_credentials:
            return baidu.error_reply(ErrorKind.UNAUTHORIZED)
        if time.time() >= expiry:
            return baidu.error(111)
        self.begin_call()
        return self.recognize(request)

    def _token(self, request: WireRequest) -> WireReply:
        with self._lock:
            self.token_requests += 1
        grant = baidu.parse_token_request(request)
        if self.faults.bad_credentials:
            return baidu.token_error_reply(unknown_client=True)
        baidu.check_client(grant, self.api_key, self.secret_key)
        token = baidu.new_access_token(self.token_ttl_s)
        with self._lock:
            self.tokens[token] = time.time() + self.token_ttl_s
        return baidu.token_reply(token, self.token_ttl_s, self.token_scope)

    def _reply_options(self) -> dict[str, Any]:
        return {"root": "ImageNet"}
