"""Degrading gracefully when a helper store (Redis, the cache folder) goes away: log once, retry later.

The response cache, the shared limits, the transition buffer and the policy registry all use it, so
every outage reads the same in the logs: one line when it starts, one when it ends.
"""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import urlsplit

from adacompress.cloud_backends.redact import register_secret


class Outage:
    """Log a store's failure once per outage (on `log`), and skip it for `retry_s` before trying again."""

    def __init__(self, what: str, retry_s: float, consequence: str, log: logging.Logger) -> None:
        """`consequence` says what the caller does meanwhile ("answers are not cached")."""
        self.what, self.retry_s, self.consequence, self.log = what, retry_s, consequence, log
        self._down_until = 0.0
        self._logged = False
        self._lock = threading.Lock()

    def up(self) -> bool:
        """Whether to try the store now (always, outside an outage's back-off)."""
        with self._lock:
            return time.monotonic() >= self._down_until

    @property
    def down(self) -> bool:
        """Whether the last attempt failed."""
        return self._logged

    def failed(self, exc: Exception) -> None:
        with self._lock:
            self._down_until = time.monotonic() + self.retry_s
            first, self._logged = not self._logged, True
        if first:
            self.log.warning("%s is unavailable (%s: %s); %s, and it is retried every %.0f s", self.what,
                        type(exc).__name__, exc, self.consequence, self.retry_s)

    def recovered(self, detail: str = "") -> None:
        with self._lock:
            was_down, self._logged = self._logged, False
        if was_down:
            self.log.info("%s is back%s", self.what, f" ({detail})" if detail else "")


def safe_url(url: str) -> str:
    """The URL without its password, for log lines (the password is registered for redaction too)."""
    parts = urlsplit(url)
    if parts.password:
        register_secret(parts.password)
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return parts._replace(netloc=netloc).geturl()
    return url
