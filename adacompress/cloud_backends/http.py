"""What the HTTP backends (Baidu, Face++, Google) share: one httpx client, the deadline, typed transport errors.

Timeouts are explicit (connect 3 s, read 15 s by default; the libraries' defaults are 5 s or a
minute), and every socket operation is also capped by the call's deadline (`deadline_io`), so
no server can hold a call past it. Transport failures become `BackendUnavailable`, which the
retry layer retries; a reply that is not the provider's documented answer becomes
`UnexpectedAnswer`. Messages name the endpoint and path but never a credential.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from adacompress.cloud_backends.base import AuthError, BackendUnavailable, Label, UnexpectedAnswer, VisionBackend
from adacompress.cloud_backends.deadline import DeadlineExceeded, budget_s, remaining_s, require_time
from adacompress.cloud_backends.deadline_io import deadline_transport
from adacompress.cloud_backends.endpoints import check_endpoint
from adacompress.cloud_backends.limits import ImageLimits
from adacompress.cloud_backends.redact import protect_library_loggers, redact, register_secret
from adacompress.cloud_backends.retry import parse_retry_after
from adacompress.config import endpoint_override, secret


def env_secret(var: str, backend: str) -> str:
    """A credential from the environment (the only place we read them), registered for redaction."""
    value = secret(var)
    if not value:
        raise AuthError(f"{backend}: set {var} in the environment; credentials are read only from there")
    register_secret(value)
    return value


def retry_after_s(headers: httpx.Headers) -> float | None:
    """`Retry-After` as seconds (delta or HTTP date), or None."""
    return parse_retry_after(headers.get("retry-after"))


def account_digest(*parts: str) -> str:
    """A short stable name for one account at one endpoint, for shared-limit keys (never the secret itself)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


class HttpBackend(VisionBackend):
    """A provider spoken to over HTTPS with httpx; subclasses build the request and map the answer.

    `min_score` defaults to 0: these APIs already choose which labels to return (AdaCompress kept
    them all); callers filter further in scoring.
    """

    endpoint_env: str = ""
    default_endpoint: str = ""
    default_limits: ImageLimits

    def __init__(self, endpoint: str | None = None, connect_timeout_s: float = 3.0,
                 read_timeout_s: float = 15.0, max_labels: int = 10, min_score: float = 0.0,
                 limits: ImageLimits | None = None) -> None:
        super().__init__(max_labels=max_labels, min_score=min_score)
        endpoint = (endpoint or endpoint_override(self.endpoint_env) or self.default_endpoint).rstrip("/")
        self.endpoint = check_endpoint(endpoint, self.name, self.endpoint_env)
        self.limits = limits or self.default_limits
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.account = ""
        """Who pays for the calls (a digest of the endpoint and key id): the scope of shared limits."""
        self._client = httpx.Client(timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
                                    follow_redirects=False, transport=deadline_transport())
        protect_library_loggers()

    def cache_params(self) -> dict[str, Any]:
        """Everything besides the bytes that changes the answer (the endpoint too: a fake is not the API)."""
        return {"endpoint": self.endpoint, "max_labels": self.max_labels, "min_score": self.min_score}

    def _post(self, path: str, upload: bool = True, **kwargs: Any) -> httpx.Response:
        """POST to `endpoint + path` within the current deadline; transport failures become typed errors.

        `upload` marks a recognition request, counted in `stats.sent` (a token request is not).
        """
        where = f"{self.endpoint}{path}"
        left = require_time(self.name, f"POST {where}")
        read_s = self.read_timeout_s if left is None else min(self.read_timeout_s, left)
        connect_s = self.connect_timeout_s if left is None else min(self.connect_timeout_s, left)
        timeout = httpx.Timeout(read_s, connect=connect_s)
        if upload:
            self.stats.add(sent=1)
        try:
            return self._client.post(where, timeout=timeout, **kwargs)
        except httpx.TimeoutException as exc:
            now_left = remaining_s()
            if left is not None and (left <= self.read_timeout_s or (now_left is not None and now_left <= 0)):
                if upload and isinstance(exc, httpx.ReadTimeout):
                    self.stats.add(abandoned=1)
                raise DeadlineExceeded(f"{self.name}: no answer from {where} within the call's "
                                       f"{budget_s():.1f} s deadline") from exc
            raise BackendUnavailable(f"{self.name}: no answer from {where} within {read_s:.1f} s "
                                     f"({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"{self.name}: cannot reach {where}: {type(exc).__name__}: {exc}") from exc

    def unexpected(self, response: httpx.Response, what: str) -> UnexpectedAnswer:
        """The error for a reply that is not the provider's answer, quoting the start of its body."""
        body = redact(response.text[:120].replace("\n", " "))
        return UnexpectedAnswer(f"{self.name}: {what} answered HTTP {response.status_code} with {body!r}, which is "
                                f"not its documented answer; check that {self.endpoint_env} ({self.endpoint}) "
                                "points at the provider")

    def json_object(self, response: httpx.Response, what: str) -> dict[str, Any]:
        """The reply's JSON object, or `UnexpectedAnswer`."""
        try:
            body = response.json()
        except ValueError:
            raise self.unexpected(response, what) from None
        if not isinstance(body, dict):
            raise self.unexpected(response, what)
        return body

    def answered(self, labels: list[Label], body: dict[str, Any]) -> tuple[list[Label], dict[str, Any]]:
        """Count a valid answer (what the provider bills) and pass it on."""
        self.stats.add(answered=1)
        return labels, body

    def close(self) -> None:
        self._client.close()
