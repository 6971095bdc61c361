"""Retries, pacing, a quota breaker and a deadline around any backend: `ResilientBackend(inner, policy)`.

One call = at most `max_attempts` uploads within `deadline_s`. Throttling and transient failures
are retried after capped exponential backoff with full jitter (`uniform(0, min(cap, base*2^n))`),
never sooner than the provider's Retry-After, while the retry budget lasts. A spent quota opens
the breaker; bad images and bad credentials fail at once, since retrying cannot fix them.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

from adacompress.cloud_backends.base import (
    AuthError,
    BackendUnavailable,
    BadImage,
    Label,
    QuotaExhausted,
    Recognition,
    Throttled,
    VisionBackend,
)
from adacompress.cloud_backends.breaker import QuotaBreaker
from adacompress.cloud_backends.deadline import DeadlineExceeded, deadline_scope, remaining_s
from adacompress.cloud_backends.ratelimit import RateLimiter, RetryBudget
from adacompress.cloud_backends.shared import LimitStore, LocalLimitStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one backend call tries. Every field is a keyword option of `create_backend`."""

    max_attempts: int = 4
    """Uploads per call, the first included."""
    base_delay_s: float = 0.25
    """Backoff before the first retry is drawn from [0, base_delay_s]; it doubles per retry."""
    max_delay_s: float = 20.0
    """Cap on one backoff (botocore's standard mode uses 20 s)."""
    deadline_s: float = 30.0
    """Overall time for one call, retries and waits included."""
    retry_budget: float = 10.0
    """Retries the backend may spend before it stops retrying (token bucket capacity)."""
    retry_refund: float = 0.1
    """Retry tokens earned back by each successful call."""
    qps: float | None = None
    """Client-side rate limit in calls per second; None for no limit."""
    quota_open_s: float = 3600.0
    """How long the breaker stays open after a quota error whose reset time is unknown."""
    seed: int | None = None
    """Seed of the jitter RNG, for reproducible runs."""


class Verdict(Enum):
    RETRY = "retry"
    TRIP = "trip"
    FAIL = "fail"


def classify(exc: BaseException) -> Verdict:
    """What the retry layer does with an error from a backend."""
    if isinstance(exc, QuotaExhausted):
        return Verdict.TRIP
    if isinstance(exc, DeadlineExceeded | BadImage | AuthError):
        return Verdict.FAIL
    if isinstance(exc, Throttled | BackendUnavailable):
        return Verdict.RETRY
    return Verdict.FAIL


def parse_retry_after(value: str | None) -> float | None:
    """A `Retry-After` value in seconds: delta-seconds or an HTTP date (RFC 9110 allows both), else None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, parsed.timestamp() - time.time())


def backoff_s(retry: int, policy: RetryPolicy, rng: random.Random, retry_after_s: float | None = None) -> float:
    """Full-jitter delay before retry number `retry` (1-based), at least the provider's Retry-After."""
    ceiling = min(policy.max_delay_s, policy.base_delay_s * 2 ** (retry - 1))
    delay = rng.uniform(0.0, ceiling)
    return max(delay, retry_after_s) if retry_after_s is not None else delay


class ResilientBackend(VisionBackend):
    """Wraps `inner` with retries, the retry budget, a QPS limiter, the quota breaker and a deadline.

    The limiter, budget and breaker keep their state in `store` under the inner client's account,
    so with a Redis store every process calling that account shares them.
    """

    def __init__(self, inner: VisionBackend, policy: RetryPolicy | None = None,
                 store: LimitStore | None = None) -> None:
        super().__init__(max_labels=inner.max_labels, min_score=0.0)
        self.inner = inner
        self.name = inner.name
        self.limits = inner.limits
        self.policy = policy or RetryPolicy()
        store = store or LocalLimitStore()
        scope = f"{self.name}:{inner.account or 'default'}"
        self.breaker = QuotaBreaker(self.name, self.policy.quota_open_s, store, f"{scope}:breaker",
                                    probe_ttl_s=self.policy.deadline_s)
        self.budget = RetryBudget(self.policy.retry_budget, self.policy.retry_refund, store, f"{scope}:retry-budget")
        self.limiter = RateLimiter(self.policy.qps, self.name, store, f"{scope}:qps") if self.policy.qps else None
        self._rng = random.Random(self.policy.seed)

    def _recognize(self, image_bytes: bytes) -> tuple[list[Label], dict[str, Any]]:
        probe = self.breaker.check()
        try:
            answer = self._attempts(image_bytes)
        except QuotaExhausted:
            raise
        except BaseException:
            if probe:
                self.breaker.release_probe()
            raise
        self.breaker.succeed(probe)
        return list(answer.labels), answer.raw

    def _attempts(self, image_bytes: bytes) -> Recognition:
        started = time.monotonic()
        with deadline_scope(self.policy.deadline_s):
            attempt = 1
            while True:
                if self.limiter:
                    self.limiter.acquire(remaining_s())
                try:
                    answer = self.inner.recognize(image_bytes)
                except Exception as exc:
                    verdict = classify(exc)
                    if verdict is Verdict.TRIP:
                        until = self.breaker.trip(exc)  # type: ignore[arg-type]
                        log.warning("%s: quota exhausted (%s); breaker open until %s", self.name, exc,
                                    time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(until)))
                        raise
                    if verdict is Verdict.FAIL:
                        raise
                    delay = self._next_delay(exc, attempt, started)
                    log.info("%s: attempt %d failed (%s); retrying in %.2f s", self.name, attempt, exc, delay)
                    time.sleep(delay)
                    self.stats.add(retries=1)
                    attempt += 1
                    continue
                self.budget.succeed()
                return answer

    def _next_delay(self, exc: Exception, attempt: int, started: float) -> float:
        """The wait before the next attempt, or raise (with `exc` as cause) when we must stop."""
        if attempt >= self.policy.max_attempts:
            exc.add_note(f"{self.name}: gave up after {attempt} attempts in {time.monotonic() - started:.1f} s")
            raise exc
        if not self.budget.take():
            exc.add_note(f"{self.name}: retry budget exhausted ({self.policy.retry_budget:g} retries; "
                         "successful calls earn them back)")
            raise exc
        delay = backoff_s(attempt, self.policy, self._rng, getattr(exc, "retry_after_s", None))
        left = remaining_s()
        if left is not None and delay >= left:
            raise DeadlineExceeded(f"{self.name}: the {self.policy.deadline_s:g} s deadline leaves {left:.2f} s, "
                                   f"less than the {delay:.2f} s wait before attempt {attempt + 1}; "
                                   f"last error: {exc}") from exc
        return delay

    def close(self) -> None:
        self.inner.close()
