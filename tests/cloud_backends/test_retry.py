"""The retry layer's rules: jittered backoff, Retry-After, the retry budget, the deadline, pacing."""

from __future__ import annotations

import random
import time

import pytest

from adacompress.cloud_backends.base import AuthError, BackendUnavailable, QuotaExhausted, Throttled
from adacompress.cloud_backends.breaker import QuotaBreaker, next_midnight, time_zone
from adacompress.cloud_backends.deadline import DeadlineExceeded
from adacompress.cloud_backends.ratelimit import RateLimiter, RetryBudget
from adacompress.cloud_backends.retry import RetryPolicy, Verdict, backoff_s, classify
from adacompress.errors import ImageTooLarge


def test_backoff_is_full_jitter_capped_and_seeded():
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=3.0)
    draws = [[backoff_s(n, policy, random.Random(7)) for n in range(1, 8)] for _ in range(2)]
    assert draws[0] == draws[1], "same seed, same delays"
    for n, delay in enumerate(draws[0], start=1):
        assert 0.0 <= delay <= min(3.0, 0.5 * 2 ** (n - 1))
    rng = random.Random(1)
    assert max(backoff_s(6, policy, rng) for _ in range(200)) > 2.0, "the cap is reached, not the formula"


def test_retry_after_is_a_floor():
    policy = RetryPolicy(base_delay_s=0.01)
    assert backoff_s(1, policy, random.Random(0), retry_after_s=2.5) == 2.5


@pytest.mark.parametrize(("error", "verdict"), [
    (Throttled("t"), Verdict.RETRY), (BackendUnavailable("u"), Verdict.RETRY),
    (QuotaExhausted("q"), Verdict.TRIP), (AuthError("a"), Verdict.FAIL), (ImageTooLarge("i"), Verdict.FAIL),
    (DeadlineExceeded("d"), Verdict.FAIL), (ValueError("v"), Verdict.FAIL),
])
def test_classify(error, verdict):
    assert classify(error) is verdict


def test_retry_budget_empties_and_refills_from_successes():
    budget = RetryBudget(capacity=2, refund=0.5)
    assert budget.take() and budget.take() and not budget.take()
    budget.succeed()
    budget.succeed()
    assert budget.take() and not budget.take()


def test_rate_limiter_spaces_calls_and_respects_the_deadline():
    limiter = RateLimiter(qps=10, backend="test")
    started = time.monotonic()
    for _ in range(4):
        limiter.acquire()
    assert time.monotonic() - started >= 0.29
    limiter = RateLimiter(qps=0.5, backend="test")
    limiter.acquire()
    with pytest.raises(DeadlineExceeded, match="0.5 QPS limit would delay this call"):
        limiter.acquire(max_wait_s=0.5)


def test_breaker_says_until_when():
    breaker = QuotaBreaker("prov", default_open_s=120)
    breaker.check()
    until = breaker.trip(QuotaExhausted("prov: quota spent"))
    assert 119 < until - time.time() <= 120
    with pytest.raises(QuotaExhausted, match=r"prov: circuit open until \d{4}-\d\d-\d\dT.* \(in 0h0[12]m\)"):
        breaker.check()
    assert breaker.rejections == 1


def test_next_midnight():
    zone = time_zone("Asia/Shanghai", 8)
    noon_utc = 1_780_000_000 - 1_780_000_000 % 86400 + 12 * 3600  # 12:00 UTC = 20:00 in Beijing
    assert next_midnight(zone, noon_utc) == noon_utc + 4 * 3600


@pytest.mark.parametrize("provider", ["facepp"], indirect=True)
def test_retry_budget_stops_retries(provider, fake, make_backend, images):
    fake.faults.throttle_next = 5
    backend = make_backend(retry_budget=1, max_attempts=5)
    with pytest.raises(Throttled) as caught:
        backend.recognize(images.jpeg())
    assert fake.calls == 2
    assert "retry budget exhausted" in " ".join(caught.value.__notes__)


@pytest.mark.parametrize("provider", ["google"], indirect=True)
def test_retry_after_beyond_the_deadline_fails_fast(provider, fake, make_backend, images):
    fake.faults.throttle_next, fake.faults.retry_after_s = 1, 30
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="less than the 30.00 s wait"):
        make_backend(deadline_s=2.0).recognize(images.jpeg())
    assert time.monotonic() - started < 1.0
    assert fake.calls == 1
