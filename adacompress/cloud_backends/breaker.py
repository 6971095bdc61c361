"""A circuit breaker that opens when the provider says the quota is spent.

Retrying a spent daily quota only burns requests (some providers count refused calls) and
time; once open, every call fails at once with `CircuitOpen`, which says until when, without
touching the network. When that time comes one call is let through as a probe, not every
caller that was waiting.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import zoneinfo

from adacompress.cloud_backends.base import QuotaExhausted
from adacompress.cloud_backends.shared import LimitStore, LocalLimitStore


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
    """Open from a `QuotaExhausted` until its reset time (or `default_open_s` when none is known).

    When that time comes, exactly one caller is let through as a probe (`check` returns True for
    it); the others are still refused until the probe succeeds (`succeed` closes the breaker),
    meets the quota again (`trip`), or fails otherwise (`release_probe` lets the next caller probe).
    The state lives in `store`, so with Redis every process sees one breaker per account.
    """

    def __init__(self, backend: str, default_open_s: float = 3600.0, store: LimitStore | None = None,
                 key: str = "breaker", probe_ttl_s: float = 30.0) -> None:
        self.backend = backend
        self.default_open_s = default_open_s
        self.store = store or LocalLimitStore()
        self.key = key
        self.probe_ttl_s = probe_ttl_s
        """How long a probe holds its slot if its process dies before reporting (the call's deadline)."""
        self.rejections = 0
        self._lock = threading.Lock()

    @property
    def open_until(self) -> float | None:
        """Unix time the quota is expected back, or None when closed."""
        state = self.store.breaker(self.key)
        return None if state is None else state[0]

    def check(self) -> bool:
        """Raise `CircuitOpen` while open; past the reset time, return True for the one caller that probes."""
        state = self.store.breaker(self.key)
        if state is None:
            return False
        until, reason = state
        if time.time() >= until:
            if self.store.claim_probe(self.key, self.probe_ttl_s):
                return True
            self._refused()
            raise CircuitOpen(f"{self.backend}: the quota's wait ended at {_describe(until)}; one probe call is "
                              "checking whether it is back, and the others are refused until it answers. "
                              "Retry in a moment.", time.time() + 1.0)
        self._refused()
        raise CircuitOpen(f"{self.backend}: circuit open until {_describe(until)}: calls are refused "
                          f"without contacting the provider because the quota is exhausted ({reason}). "
                          "Wait, raise the quota, or use another backend.", until)

    def _refused(self) -> None:
        with self._lock:
            self.rejections += 1

    def trip(self, exc: QuotaExhausted) -> float:
        """Open the breaker because of `exc`; return the Unix time it closes."""
        until = getattr(exc, "reset_at", None) or time.time() + self.default_open_s
        self.store.trip(self.key, until, str(exc))
        return until

    def succeed(self, probe: bool) -> None:
        """A call succeeded; if it was the probe, the quota is back: close the breaker."""
        if probe:
            self.store.close_breaker(self.key)

    def release_probe(self) -> None:
        """The probe failed for another reason: let the next caller probe."""
        self.store.release_probe(self.key)
