"""Client-side pacing: a QPS limiter and the retry budget, both token buckets.

The limiter keeps us under the provider's published rate (Baidu's free tier allows 2 QPS) so we
do not earn throttling errors in the first place; the retry budget caps how many retries a
backend may spend, refilled by successes (botocore's retry quota is the same idea), so a
struggling provider is not hammered by a retry storm.
"""

from __future__ import annotations

import threading
import time

from adacompress.cloud_backends.deadline import DeadlineExceeded


class RateLimiter:
    """At most `qps` calls per second, spaced evenly (burst of one), shared by all threads."""

    def __init__(self, qps: float, backend: str) -> None:
        if qps <= 0:
            raise ValueError(f"{backend}: qps must be positive, got {qps}")
        self.qps = qps
        self.backend = backend
        self._next = 0.0
        self._lock = threading.Lock()

    def acquire(self, max_wait_s: float | None = None) -> float:
        """Wait for the next slot; return the seconds waited. Raise if the wait exceeds `max_wait_s`."""
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            wait = slot - now
            if max_wait_s is not None and wait > max_wait_s:
                raise DeadlineExceeded(f"{self.backend}: the {self.qps:g} QPS limit would delay this call "
                                       f"{wait:.2f} s, past its deadline ({max_wait_s:.2f} s left)")
            self._next = slot + 1.0 / self.qps
        if wait > 0:
            time.sleep(wait)
        return wait


class RetryBudget:
    """A bucket of retry tokens: each retry takes one, each success puts back `refund`."""

    def __init__(self, capacity: float, refund: float) -> None:
        self.capacity = capacity
        self.refund = refund
        self._tokens = capacity
        self._lock = threading.Lock()

    @property
    def tokens(self) -> float:
        with self._lock:
            return self._tokens

    def take(self) -> bool:
        """Spend one retry token; False when the budget is empty."""
        with self._lock:
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True

    def succeed(self) -> None:
        with self._lock:
            self._tokens = min(self.capacity, self._tokens + self.refund)
