"""A circuit breaker that opens when the provider says the quota is spent.

Retrying a spent daily quota only burns requests (some providers count refused calls) and
time; once open, every call fails at once with `CircuitOpen`, which says until when, without
touching the network. When that time comes the next call is let through as a probe.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import zoneinfo

from adacompress.cloud_backends.base import QuotaExhausted


class DailyQuotaExhausted(QuotaExhausted):
    """A quota that resets at a known time (`reset_at`, Unix seconds), e.g. Baidu's daily limit."""

    code = "daily_quota_exhausted"

    def __init__(self, message: str, reset_at: float) -> None:
        super().__init__(message)
        self.reset_at = reset_at


class CircuitOpen(QuotaExhausted):
    """Refused locally: the breaker is open after a `QuotaExhausted`; no request was sent."""

    code = "circuit_open"

    def __init__(self, message: str, until: float) -> None:
        super().__init__(message)
        self.until = until


def time_zone(name: str, fallback_utc_offset_h: float) -> dt.tzinfo:
    """The IANA zone `name`, or a fixed offset where no time-zone database is installed."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.timezone(dt.timedelta(hours=fallback_utc_offset_h))


def next_midnight(zone: dt.tzinfo, now: float | None = None) -> float:
    """Unix time of the next 00:00 in `zone`."""
    local = dt.datetime.fromtimestamp(time.time() if now is None else now, zone)
    midnight = (local + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.timestamp()


def _describe(until: float) -> str:
    left = max(0.0, until - time.time())
    hours, rest = divmod(int(left), 3600)
    stamp = dt.datetime.fromtimestamp(until, dt.UTC).isoformat(timespec="seconds")
    return f"{stamp} (in {hours}h{rest // 60:02d}m)"


class QuotaBreaker:
    """Open from a `QuotaExhausted` until its reset time (or `default_open_s` when none is known)."""

    def __init__(self, backend: str, default_open_s: float = 3600.0) -> None:
        self.backend = backend
        self.default_open_s = default_open_s
        self.rejections = 0
        self._until: float | None = None
        self._reason = ""
        self._lock = threading.Lock()

    @property
    def open_until(self) -> float | None:
        """Unix time the breaker closes, or None when closed."""
        with self._lock:
            return self._until

    def check(self) -> None:
        """Raise `CircuitOpen` while open; past the reset time, close and let the call probe."""
        with self._lock:
            if self._until is None:
                return
            if time.time() >= self._until:
                self._until = None
                return
            self.rejections += 1
            until, reason = self._until, self._reason
        raise CircuitOpen(f"{self.backend}: circuit open until {_describe(until)}: calls are refused "
                          f"without contacting the provider because the quota is exhausted ({reason}). "
                          "Wait, raise the quota, or use another backend.", until)

    def trip(self, exc: QuotaExhausted) -> float:
        """Open the breaker because of `exc`; return the Unix time it closes."""
        until = getattr(exc, "reset_at", None) or time.time() + self.default_open_s
        with self._lock:
            self._until, self._reason = until, str(exc)
        return until
