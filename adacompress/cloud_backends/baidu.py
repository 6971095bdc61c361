"""Baidu AI Cloud general object and scene recognition (`advanced_general`) over httpx.

Keys come from `BAIDU_API_KEY` / `BAIDU_SECRET_KEY`, the endpoint from `BAIDU_ENDPOINT`
(default https://aip.baidubce.com). The OAuth `client_credentials` token is cached until 30 s
before it expires (as the official SDK does) and refreshed once when a call answers 110/111.
Baidu reports errors in the body with HTTP 200; `map_error` turns its codes into our types.
Anything else (another status, a body with neither `result` nor `error_code`) is not an answer.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import httpx

from adacompress.cloud_backends.answers import read_labels
from adacompress.cloud_backends.base import (
    AuthError,
    BackendError,
    BackendUnavailable,
    Label,
    QuotaExhausted,
    Throttled,
    VisionBackend,
)
from adacompress.cloud_backends.breaker import DailyQuotaExhausted, next_midnight, time_zone
from adacompress.cloud_backends.http import HttpBackend, account_digest, env_secret, retry_after_s
from adacompress.cloud_backends.limits import BAIDU_LIMITS, check_image, check_request_size
from adacompress.cloud_backends.redact import redact, register_secret
from adacompress.cloud_backends.registry import register_backend
from adacompress.cloud_backends.stack import build_stack
from adacompress.config import settings
from adacompress.errors import BadImage, NotAnImage, UnsupportedFormat

TOKEN_PATH = "/oauth/2.0/token"
CLASSIFY_PATH = "/rest/2.0/image-classify/v2/advanced_general"
TOKEN_MARGIN_S = 30.0
REQUIRED_SCOPE = "brain_all_scope"
QUOTA_ZONE = time_zone("Asia/Shanghai", 8.0)
"""Baidu's daily limits are assumed to reset at midnight China Standard Time (unverified)."""
FREE_TIER_QPS = 2.0
"""Overrides the default client-side rate (paid plans allow more) where no `qps=` option is given."""

_TOKEN_ERRORS = {110, 111}
_THROTTLED = {4, 18}
_TRANSIENT = {1, 2, 216400, 216401, 216500, 216630, 282000, 282001}
"""Server-side failures Baidu's error pages say to retry (unknown, unavailable, backend, internal, recognize)."""
_APP_NOT_READY = 15
"""`app not exsits or create failed`: "create failed" is Baidu's side, so it is retried; if it persists,
the app behind BAIDU_API_KEY does not exist."""
_AUTH = {6, 13, 14, 100, 216110}
_OAUTH_REFUSALS = {"invalid_client", "unauthorized_client", "invalid_grant", "unsupported_grant_type",
                   "invalid_request", "invalid_scope"}
_BAD_IMAGE: dict[int, type[BadImage]] = {216200: NotAnImage, 216201: UnsupportedFormat, 216202: BadImage}


def map_error(body: dict[str, Any]) -> Exception:
    """Our typed error for a Baidu `{"error_code", "error_msg"}` body."""
    code = body.get("error_code")
    text = f"baidu: {redact(str(body.get('error_msg', '')))} (error_code {code})"
    if code == 17:
        return DailyQuotaExhausted(f"{text}; the daily quota resets at midnight Beijing time",
                                   reset_at=next_midnight(QUOTA_ZONE))
    if code == 19:
        return QuotaExhausted(f"{text}; the account's total call quota is spent")
    if code in _THROTTLED:
        return Throttled(text)
    if code in _TRANSIENT:
        return BackendUnavailable(text)
    if code == _APP_NOT_READY:
        return BackendUnavailable(f"{text}; retried, but if it persists check that the app behind BAIDU_API_KEY "
                                  "exists in the Baidu console")
    if code in _AUTH or code in _TOKEN_ERRORS:
        return AuthError(f"{text}; check BAIDU_API_KEY, BAIDU_SECRET_KEY and the app's enabled APIs")
    if code in _BAD_IMAGE:
        return _BAD_IMAGE[code](text)
    return BackendError(text)


class BaiduBackend(HttpBackend):
    """`advanced_general` with a form-encoded base64 image; `keyword` and `score` (0..1) as labels."""

    name = "baidu"
    endpoint_env = "BAIDU_ENDPOINT"
    default_endpoint = "https://aip.baidubce.com"
    default_limits = BAIDU_LIMITS

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._api_key = env_secret("BAIDU_API_KEY", self.name)
        self._secret_key = env_secret("BAIDU_SECRET_KEY", self.name)
        self.account = account_digest(self.endpoint, self._api_key)
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = threading.Lock()
        self.token_fetches = 0

    def _recognize(self, image_bytes: bytes) -> tuple[list[Label], dict[str, Any]]:
        check_image(image_bytes, self.limits, self.name)
        encoded = base64.b64encode(image_bytes).decode("ascii")
        check_request_size(len(encoded), self.limits, self.name)
        token = self._access_token()
        body = self._classify(encoded, token)
        if body.get("error_code") in _TOKEN_ERRORS:
            self._drop_token(token)
            body = self._classify(encoded, self._access_token())
        if "error_code" in body:
            raise map_error(body)
        labels = read_labels(body.get("result"), "keyword", "score", 1.0,
                             "baidu: advanced_general's HTTP 200 answer: `result`")
        return self.answered(labels, body)

    def _classify(self, encoded: str, token: str) -> dict[str, Any]:
        response = self._post(CLASSIFY_PATH, params={"access_token": token}, data={"image": encoded})
        body = self._json(response, "advanced_general")
        if response.status_code != 200 and "error_code" not in body:
            raise self.unexpected(response, "advanced_general")
        return body

    def _json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        """The JSON object; HTTP-level failures (gateways, 5xx) become typed errors first."""
        if response.status_code == 429:
            raise Throttled(f"baidu: {what} answered HTTP 429", retry_after_s(response.headers))
        if response.status_code >= 500:
            raise BackendUnavailable(f"baidu: {what} answered HTTP {response.status_code}")
        return self.json_object(response, what)

    def _access_token(self) -> str:
        with self._token_lock:
            if self._token is None or time.time() >= self._token_expires:
                self._token, self._token_expires = self._fetch_token()
            return self._token

    def _drop_token(self, token: str) -> None:
        """Forget `token` if it is still the cached one (another thread may have refreshed it)."""
        with self._token_lock:
            if self._token == token:
                self._token = None

    def _fetch_token(self) -> tuple[str, float]:
        """POST the client_credentials grant (parameters in the query, as Baidu documents it)."""
        self.token_fetches += 1
        response = self._post(TOKEN_PATH, upload=False, params={
            "grant_type": "client_credentials", "client_id": self._api_key, "client_secret": self._secret_key})
        body = self._json(response, "the token endpoint")
        if body.get("error") in _OAUTH_REFUSALS:
            reason = f"{body['error']}: {body.get('error_description', '')}".strip(": ")
            raise AuthError(f"baidu: the token endpoint refused the keys ({redact(reason)}); check "
                            "BAIDU_API_KEY and BAIDU_SECRET_KEY")
        if response.status_code != 200 or not isinstance(body.get("access_token"), str):
            raise self.unexpected(response, "the token endpoint")
        token = str(body["access_token"])
        register_secret(token)
        if REQUIRED_SCOPE not in str(body.get("scope", "")).split():
            raise AuthError(f"baidu: the token's scope lacks {REQUIRED_SCOPE}, so it cannot call the AI APIs "
                            "with access_token; enable image recognition for this app in the Baidu console")
        expires_in = float(body.get("expires_in", 0))
        return token, time.time() + max(0.0, expires_in - TOKEN_MARGIN_S)


@register_backend("baidu")
def _make_baidu(**options: Any) -> VisionBackend:
    """Paced at the free tier's 2 QPS unless `qps=` or `BAIDU_QPS` says otherwise."""
    return build_stack(BaiduBackend, options, default_qps=settings().baidu_qps or FREE_TIER_QPS)
