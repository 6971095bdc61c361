"""What the HTTP backends (Baidu, Face++, Google) share: one httpx client, timeouts, typed transport errors.

Timeouts are explicit (connect 3 s, read 15 s by default; the libraries' defaults are 5 s or a
minute) and shrink to the call's remaining deadline. Transport failures become
`BackendUnavailable`, which the retry layer retries; messages name the endpoint and path but
never the query string, where Baidu's token and Google's key travel.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx

from adacompress.cloud_backends.base import AuthError, BackendUnavailable, VisionBackend
from adacompress.cloud_backends.deadline import DeadlineExceeded, budget_s, require_time
from adacompress.cloud_backends.limits import ImageLimits
from adacompress.cloud_backends.redact import protect_library_loggers, register_secret
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
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, parsed.timestamp() - time.time())


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
        self.endpoint = (endpoint or endpoint_override(self.endpoint_env) or self.default_endpoint).rstrip("/")
        self.limits = limits or self.default_limits
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self._client = httpx.Client(timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
                                    follow_redirects=False)
        protect_library_loggers()

    def cache_params(self) -> dict[str, Any]:
        """Everything besides the bytes that changes the answer (the endpoint too: a fake is not the API)."""
        return {"endpoint": self.endpoint, "max_labels": self.max_labels, "min_score": self.min_score}

    def _post(self, path: str, **kwargs: Any) -> httpx.Response:
        """POST to `endpoint + path` within the current deadline; transport failures become typed errors."""
        where = f"{self.endpoint}{path}"
        left = require_time(self.name, f"POST {where}")
        read_s = self.read_timeout_s if left is None else min(self.read_timeout_s, left)
        connect_s = self.connect_timeout_s if left is None else min(self.connect_timeout_s, left)
        timeout = httpx.Timeout(read_s, connect=connect_s)
        try:
            return self._client.post(where, timeout=timeout, **kwargs)
        except httpx.TimeoutException as exc:
            if left is not None and left <= self.read_timeout_s:
                raise DeadlineExceeded(f"{self.name}: no answer from {where} within the call's "
                                       f"{budget_s():.1f} s deadline") from exc
            raise BackendUnavailable(f"{self.name}: no answer from {where} within {read_s:.1f} s "
                                     f"({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"{self.name}: cannot reach {where}: {type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self._client.close()
