"""Client-side pacing: a QPS limiter and the retry budget, both token buckets in a `LimitStore`.

The limiter keeps us under the provider's published rate (Baidu's free tier allows 2 QPS) so we
do not earn throttling errors in the first place; the retry budget caps how many retries a
backend may spend, refilled by successes (botocore's retry quota is the same idea), so a
struggling provider is not hammered by a retry storm. With a Redis store both are one bucket for
every process using the account; with the local store, for this process.
"""

from __future__ import annotations

import time

from adacompress.cloud_backends.deadline import DeadlineExceeded
from adacompress.cloud_backends.shared import LimitStore, LocalLimitStore


class RateLimiter:
    """At most `qps` calls per second, at most `burst` at once, shared by everyone using `store` and `key`."""

    def __init__(self, qps: float, backend: str, store: LimitStore | None = None, key: str = "qps",
                 burst: int = 1) -> None:
        if qps <= 0:
            raise ValueError(f"{backend}: qps must be positive, got {qps}")
        self.qps = qps
        self.backend = backend
        self.burst = burst
        self.store = store or LocalLimitStore()
        self.key = key

    @property
    def shared(self) -> bool:
        """Whether other processes draw from the same bucket."""
        return self.store.shared

    def reserve(self, max_wait_s: float | None = None) -> float:
        """Take the next slot and return how long to wait for it; raise if that is past `max_wait_s`.

        A refused call takes no slot, so it does not delay the calls after it.
        """
        wait = self.store.reserve(self.key, 1.0 / self.qps, self.burst, max_wait_s)
        if wait is None:
            raise DeadlineExceeded(f"{self.backend}: the {self.qps:g} QPS limit would delay this call past its "
                                   f"deadline ({max_wait_s:.2f} s left); lower the load or raise qps")
        return wait

    def acquire(self, max_wait_s: float | None = None) -> float:
        """Wait for the next slot; return the seconds waited. Raise if the wait exceeds `max_wait_s`."""
        wait = self.reserve(max_wait_s)
        if wait > 0:
            time.sleep(wait)
        return wait


class RetryBudget:
    """A bucket of retry tokens: each retry takes one, each success puts back `refund`."""

    def __init__(self, capacity: float, refund: float, store: LimitStore | None = None,
                 key: str = "retry-budget") -> None:
        self.capacity = capacity
        self.refund = refund
        self.store = store or LocalLimitStore()
        self.key = key

    @property
    def tokens(self) -> float:
        return self.store.tokens(self.key, self.capacity)

    def take(self) -> bool:
        """Spend one retry token; False when the budget is empty."""
        return self.store.take(self.key, self.capacity)

    def succeed(self) -> None:
        self.store.refund(self.key, self.capacity, self.refund)
