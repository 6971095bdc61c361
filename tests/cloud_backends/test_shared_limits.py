"""Provider limits shared by every process through Redis (in-process without it), single-flight, one probe.

Two backend stacks built from the registry stand for two worker processes: they share nothing but
the Redis they are pointed at. Bucket arithmetic is checked logically (granted slots), never by
timing how fast something ran; elapsed-time checks below are lower bounds that sleeping guarantees.
"""

from __future__ import annotations

import threading
import time

import pytest

from adacompress.cloud_backends.base import QuotaExhausted, Throttled
from adacompress.cloud_backends.breaker import CircuitOpen, QuotaBreaker
from adacompress.cloud_backends.cost import layers
from adacompress.cloud_backends.deadline import DeadlineExceeded
from adacompress.cloud_backends.ratelimit import RateLimiter, RetryBudget
from adacompress.cloud_backends.shared import LocalLimitStore, RedisLimitStore

REDIS_URL = "redis://127.0.0.1:6379/0"


def _granted_slots(limiters: list[RateLimiter], n: int) -> list[tuple[float, float]]:
    """Reserve `n` slots round-robin without sleeping; for each, the earliest and latest moment it may start
    (the wait is measured from some instant during the call, so the call's own latency brackets it)."""
    slots = []
    for i in range(n):
        before = time.monotonic()
        wait = limiters[i % len(limiters)].reserve(max_wait_s=120.0)
        slots.append((before + wait, time.monotonic() + wait))
    return sorted(slots)


def _assert_within_bucket(slots: list[tuple[float, float]], rate: float, burst: int) -> None:
    """Between any two granted slots, no more than burst + rate * (the longest the elapsed time can be)."""
    for i in range(len(slots)):
        for j in range(i, len(slots)):
            longest = slots[j][1] - slots[i][0]
            assert j - i + 1 <= burst + rate * longest + 1e-3, (i, j, longest)


def test_two_clients_on_one_redis_key_never_exceed_burst_plus_rate(redis_prefix):
    stores = [RedisLimitStore(REDIS_URL, redis_prefix), RedisLimitStore(REDIS_URL, redis_prefix)]
    limiters = [RateLimiter(4.0, "baidu", store=store, key="baidu:account") for store in stores]
    slots = _granted_slots(limiters, 16)
    _assert_within_bucket(slots, rate=4.0, burst=1)
    assert slots[-1][1] - slots[0][0] >= 15 / 4.0 - 0.05, "the two clients share one bucket"


def test_the_in_process_bucket_keeps_the_same_promise():
    store = LocalLimitStore()
    limiters = [RateLimiter(5.0, "baidu", store=store, key="k") for _ in range(2)]
    _assert_within_bucket(_granted_slots(limiters, 12), rate=5.0, burst=1)
    other = RateLimiter(5.0, "baidu", store=LocalLimitStore(), key="k")
    assert other.reserve() == 0.0, "without Redis, another process has its own bucket"


def test_a_reservation_past_the_deadline_is_refused_and_not_kept(redis_prefix):
    limiter = RateLimiter(0.5, "baidu", store=RedisLimitStore(REDIS_URL, redis_prefix), key="k")
    assert limiter.reserve() == 0.0
    with pytest.raises(DeadlineExceeded, match="0.5 QPS limit would delay this call"):
        limiter.reserve(max_wait_s=0.5)
    assert 1.5 < limiter.reserve(max_wait_s=5.0) <= 2.0, "the refused call took no slot"


def test_the_retry_budget_is_shared(redis_prefix):
    budgets = [RetryBudget(2, 0.5, store=RedisLimitStore(REDIS_URL, redis_prefix), key="k") for _ in range(2)]
    assert budgets[0].take() and budgets[1].take()
    assert not budgets[0].take() and not budgets[1].take()
    budgets[1].succeed()
    budgets[0].succeed()
    assert budgets[0].take() and not budgets[1].take()
    assert budgets[0].tokens == pytest.approx(0.0)


@pytest.mark.parametrize("provider", ["baidu"], indirect=True)
def test_two_workers_share_one_qps_limit_through_redis(provider, fake, make_backend, images, redis_prefix):
    workers = [make_backend(qps=2.0, redis_url=REDIS_URL, cache_prefix=redis_prefix) for _ in range(2)]
    started = time.monotonic()
    for seed in range(4):
        workers[seed % 2].recognize(images.jpeg(seed))
    assert time.monotonic() - started >= 1.45, "4 calls at 2 QPS in all need 1.5 s, whichever worker sends them"
    assert layers(workers[0])[1].limiter.shared


@pytest.mark.parametrize("provider", ["facepp"], indirect=True)
def test_two_workers_share_one_retry_budget_through_redis(provider, fake, make_backend, images, redis_prefix):
    workers = [make_backend(retry_budget=1, redis_url=REDIS_URL, cache_prefix=redis_prefix) for _ in range(2)]
    fake.faults.throttle_next = 1
    assert workers[0].recognize(images.jpeg(0)).labels  # spends the only retry token
    fake.faults.throttle_next = 1
    with pytest.raises(Throttled) as caught:
        workers[1].recognize(images.jpeg(1))
    assert "retry budget exhausted" in " ".join(caught.value.__notes__)


@pytest.mark.parametrize("provider", ["google"], indirect=True)
def test_a_quota_seen_by_one_worker_opens_the_breaker_for_all(provider, fake, make_backend, images,
                                                             redis_prefix):
    workers = [make_backend(redis_url=REDIS_URL, cache_prefix=redis_prefix) for _ in range(2)]
    fake.faults.quota_exhausted = True
    with pytest.raises(QuotaExhausted, match="Requests per day"):
        workers[0].recognize(images.jpeg(0))
    fake.faults.quota_exhausted = False
    with pytest.raises(CircuitOpen, match="google: circuit open until"):
        workers[1].recognize(images.jpeg(1))
    assert fake.calls == 1


@pytest.mark.parametrize("shared", [False, True], ids=["in-process", "redis"])
@pytest.mark.parametrize("provider", ["facepp"], indirect=True)
def test_when_the_breaker_closes_one_probe_goes_through(provider, fake, make_backend, images, redis_prefix, shared):
    options = {"redis_url": REDIS_URL, "cache_prefix": redis_prefix} if shared else {}
    workers = [make_backend(quota_open_s=0.3, **options) for _ in range(2 if shared else 1)]
    fake.faults.quota_exhausted = True
    with pytest.raises(QuotaExhausted, match="Insufficient Account Balance"):
        workers[0].recognize(images.jpeg(0))
    fake.faults.quota_exhausted, fake.faults.delay_s = False, 0.6
    time.sleep(0.35)
    outcomes: list[str] = []

    def call(seed: int) -> None:
        try:
            workers[seed % len(workers)].recognize(images.jpeg(seed))
            outcomes.append("answered")
        except CircuitOpen as exc:
            assert "probe" in str(exc)
            outcomes.append("refused")

    threads = [threading.Thread(target=call, args=(seed,)) for seed in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["answered", "refused", "refused", "refused"]
    assert fake.calls == 2, "the quota call, then exactly one probe"
    assert workers[-1].recognize(images.jpeg(9)).labels, "the probe's success closed the breaker"


def test_a_failed_probe_frees_the_slot_for_the_next_one():
    breaker = QuotaBreaker("prov", default_open_s=0.05, store=LocalLimitStore(), key="k")
    breaker.trip(Exception("quota"))  # type: ignore[arg-type]
    time.sleep(0.06)
    assert breaker.check() is True, "the first caller after the wait is the probe"
    with pytest.raises(CircuitOpen, match="probe"):
        breaker.check()
    breaker.release_probe()
    assert breaker.check() is True
    breaker.succeed(probe=True)
    assert breaker.check() is False and breaker.open_until is None


@pytest.mark.parametrize("shared", [False, True], ids=["in-process", "redis"])
@pytest.mark.parametrize("provider", ["baidu"], indirect=True)
def test_identical_concurrent_uploads_go_upstream_once(provider, fake, make_backend, images, redis_prefix,
                                                       tmp_path, shared):
    if shared:
        workers = [make_backend(cache="redis", redis_url=REDIS_URL, cache_prefix=redis_prefix) for _ in range(2)]
    else:
        workers = [make_backend(cache="disk", cache_dir=tmp_path)]
    fake.faults.delay_s = 0.5
    answers = []
    threads = [threading.Thread(target=lambda i=i: answers.append(workers[i % len(workers)].recognize(
        images.jpeg()))) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 4 and len({answer.names for answer in answers}) == 1
    assert fake.calls == 1
    assert sum(w.stats.snapshot()["cache_hits"] for w in workers) == 3


def test_without_redis_the_limits_stay_in_process(monkeypatch):
    from adacompress.cloud_backends.shared import open_limit_store

    assert isinstance(open_limit_store(None), LocalLimitStore)
    assert isinstance(open_limit_store(REDIS_URL), RedisLimitStore)
