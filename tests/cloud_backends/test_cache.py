"""The response cache: a repeated upload costs no call, on disk and in a real Redis, and Redis outages degrade."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis

from adacompress.cloud_backends.base import BackendUnavailable
from adacompress.cloud_backends.cache import DiskCache, RedisCache
from adacompress.cloud_backends.cost import cost_report
from adacompress.cloud_backends.fakes import make_fake
from adacompress.cloud_backends.registry import create_backend

REDIS_URL = "redis://127.0.0.1:6379/0"


def test_disk_cache_hit_costs_no_call(provider, fake, make_backend, images, tmp_path):
    backend = make_backend(cache="disk", cache_dir=tmp_path / "responses")
    first = backend.recognize(images.jpeg())
    second = backend.recognize(images.jpeg())
    assert second.labels == first.labels and second.raw == first.raw
    assert fake.calls == 1
    assert backend.stats.snapshot()["cache_hits"] == 1 and backend.stats.calls == 1
    report = cost_report(backend)
    assert (report.cache_hits, report.billable_calls) == (1, 1)
    assert report.estimated_usd == pytest.approx(report.price_per_1k_usd / 1000)
    again = make_backend(cache="disk", cache_dir=tmp_path / "responses")  # a later run, same folder
    assert again.recognize(images.jpeg()).labels == first.labels
    assert fake.calls == 1


def test_default_cache_is_on_disk_under_the_cache_dir(provider, fake, images, tmp_path):
    backend = create_backend(provider, qps=None)  # ADACOMPRESS_CACHE_DIR points into tmp_path
    try:
        backend.recognize(images.jpeg())
        backend.recognize(images.jpeg())
    finally:
        backend.close()
    assert fake.calls == 1
    assert list((tmp_path / "cache" / "responses" / provider).rglob("*.json"))


def test_redis_cache_hit_costs_no_call(provider, fake, make_backend, images, redis_prefix):
    backend = make_backend(cache="redis", redis_url=REDIS_URL, cache_prefix=redis_prefix, cache_ttl_s=120)
    first = backend.recognize(images.jpeg())
    assert backend.recognize(images.jpeg()).labels == first.labels
    assert fake.calls == 1 and backend.stats.snapshot()["cache_hits"] == 1
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{redis_prefix}response:{provider}:*"))
    assert len(keys) == 1
    assert 0 < client.ttl(keys[0]) <= 120


@pytest.mark.parametrize("provider", ["google"], indirect=True)
def test_redis_url_from_the_environment(provider, fake, make_backend, images, redis_prefix, monkeypatch):
    monkeypatch.setenv("ADACOMPRESS_REDIS_URL", REDIS_URL)
    backend = make_backend(cache="auto", cache_prefix=redis_prefix)
    assert isinstance(backend.cache, RedisCache)
    backend.recognize(images.jpeg())
    backend.recognize(images.jpeg())
    assert fake.calls == 1


@pytest.mark.parametrize("provider", ["facepp"], indirect=True)
def test_parameters_are_part_of_the_key(provider, fake, make_backend, images, tmp_path):
    make_backend(cache="disk", cache_dir=tmp_path).recognize(images.jpeg())
    make_backend(cache="disk", cache_dir=tmp_path, scenes=True).recognize(images.jpeg())
    make_backend(cache="disk", cache_dir=tmp_path, max_labels=3).recognize(images.jpeg())
    assert fake.calls == 3


@pytest.mark.parametrize("provider", ["baidu"], indirect=True)
def test_failures_are_not_cached(provider, fake, make_backend, images, tmp_path):
    backend = make_backend(cache="disk", cache_dir=tmp_path, max_attempts=1)
    fake.faults.fail_next = 1
    with pytest.raises(BackendUnavailable, match="internal error"):
        backend.recognize(images.jpeg())
    assert backend.recognize(images.jpeg()).labels
    assert fake.calls == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def own_redis(tmp_path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A private redis-server this test may kill, so the shared one is never disturbed."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield url, process
    if process.poll() is None:
        process.terminate()
    process.wait(timeout=5)


@pytest.mark.parametrize("provider", ["rekognition"], indirect=True)
def test_redis_going_away_mid_run_degrades(provider, fake, make_backend, images, own_redis, caplog):
    url, process = own_redis
    backend = make_backend(cache="redis", redis_url=url)
    backend.recognize(images.jpeg(0))
    backend.recognize(images.jpeg(0))
    assert fake.calls == 1
    process.terminate()
    process.wait(timeout=5)
    with caplog.at_level(logging.WARNING, logger="adacompress.cloud_backends.cache"):
        for seed in (0, 1, 2):
            assert backend.recognize(images.jpeg(seed)).labels
    assert fake.calls == 4, "without the cache every upload goes to the provider"
    warnings = [r for r in caplog.records if r.name == "adacompress.cloud_backends.cache"]
    assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()


def test_disk_cache_on_an_unwritable_folder_degrades(tmp_path, caplog):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    cache = DiskCache(blocker / "responses")
    with caplog.at_level(logging.WARNING):
        cache.put("response:b:p:" + "0" * 64, b"{}", None)
        cache.put("response:b:p:" + "1" * 64, b"{}", None)
    assert cache.get("response:b:p:" + "0" * 64) is None
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1


@pytest.mark.parametrize("provider", ["google"], indirect=True)
def test_corrupt_redis_value_is_a_miss(provider, fake, make_backend, images, redis_prefix):
    backend = make_backend(cache="redis", redis_url=REDIS_URL, cache_prefix=redis_prefix)
    backend.recognize(images.jpeg())
    client = redis.Redis.from_url(REDIS_URL)
    (key,) = client.scan_iter(match=f"{redis_prefix}response:*")
    client.set(key, b"\x00not json")
    assert backend.recognize(images.jpeg()).labels
    assert fake.calls == 2


UNREADABLE = {
    "foreign-json": '{"labels": "x"}', "old-format": '{"labels": [["cat", 0.9]], "raw": {}}',
    "no-labels": '{"raw": {}}', "a-list": "[1, 2]", "a-string": '"text"', "short-label": '{"labels": [["a"]]}',
}


@pytest.mark.parametrize("provider", ["google"], indirect=True)
@pytest.mark.parametrize("stored", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_an_unreadable_redis_entry_is_a_counted_miss(provider, fake, make_backend, images, redis_prefix, stored):
    backend = make_backend(cache="redis", redis_url=REDIS_URL, cache_prefix=redis_prefix)
    backend.recognize(images.jpeg())
    client = redis.Redis.from_url(REDIS_URL)
    (key,) = client.scan_iter(match=f"{redis_prefix}response:*")
    client.set(key, stored)
    assert backend.recognize(images.jpeg()).labels
    assert fake.calls == 2
    assert backend.stats.snapshot()["cache_unreadable"] == 1
    assert backend.recognize(images.jpeg()).labels and fake.calls == 2, "the fresh answer replaced it"


@pytest.mark.parametrize("provider", ["facepp"], indirect=True)
def test_an_unreadable_disk_entry_is_a_counted_miss_not_an_outage(provider, fake, make_backend, images, tmp_path):
    backend = make_backend(cache="disk", cache_dir=tmp_path)
    backend.recognize(images.jpeg())
    (path,) = tmp_path.rglob("*.json")
    path.write_text('{"raw": {}}')
    assert backend.recognize(images.jpeg()).labels
    path.write_text("not json")
    assert backend.recognize(images.jpeg()).labels
    assert fake.calls == 3
    assert backend.stats.snapshot()["cache_unreadable"] == 2
    backend.recognize(images.jpeg(1))
    assert backend.recognize(images.jpeg(1)) and fake.calls == 4, "the cache still works after bad entries"


@pytest.mark.parametrize("provider", ["rekognition"], indirect=True)
def test_a_new_model_version_is_seen_and_retires_cached_answers(provider, monkeypatch, images, tmp_path,
                                                                 free_port):
    """A fake restarted with another model on the same port: the old answers must not be served."""
    old = make_fake("rekognition", port=free_port, model_version="3.0").start()
    for name, value in old.env().items():
        monkeypatch.setenv(name, value)
    backend = create_backend("rekognition", cache="disk", cache_dir=tmp_path, qps=None, min_score=0.0,
                             model_check_s=0.5)
    try:
        first = backend.recognize(images.jpeg())
        assert backend.recognize(images.jpeg()).raw == first.raw and old.calls == 1
        old.stop()
        new = make_fake("rekognition", port=free_port, model_version="3.1", top_k=2).start()
        try:
            fresh = backend.recognize(images.jpeg(), use_cache=False)  # an estimate upload bypasses the cache
            assert new.calls == 1 and fresh.raw["LabelModelVersion"] == "3.1"
            assert backend.recognize(images.jpeg()).raw["LabelModelVersion"] == "3.1"
            assert new.calls == 1, "the fresh answer is cached under the new version"
            backend.recognize(images.jpeg(1))
            time.sleep(0.6)  # past model_check_s: the next call re-checks the model upstream
            backend.recognize(images.jpeg(1))
            assert new.calls == 3
        finally:
            new.stop()
    finally:
        backend.close()


@pytest.mark.parametrize("provider", ["baidu"], indirect=True)
def test_the_epoch_retires_answers_of_providers_without_a_version(provider, fake, make_backend, images, tmp_path,
                                                                   monkeypatch):
    make_backend(cache="disk", cache_dir=tmp_path).recognize(images.jpeg())
    make_backend(cache="disk", cache_dir=tmp_path).recognize(images.jpeg())
    assert fake.calls == 1
    monkeypatch.setenv("ADACOMPRESS_CACHE_EPOCH", "2026-07-provider-swap")
    make_backend(cache="disk", cache_dir=tmp_path).recognize(images.jpeg())
    assert fake.calls == 2
    make_backend(cache="disk", cache_dir=tmp_path, cache_epoch="by-option").recognize(images.jpeg())
    assert fake.calls == 3


@pytest.mark.parametrize("provider", ["google", "rekognition"], indirect=True)
def test_entries_live_as_long_as_their_model_can_be_trusted(provider, fake, make_backend, images, redis_prefix):
    backend = make_backend(cache="redis", redis_url=REDIS_URL, cache_prefix=redis_prefix)
    backend.recognize(images.jpeg())
    client = redis.Redis.from_url(REDIS_URL)
    (key,) = client.scan_iter(match=f"{redis_prefix}response:*")
    days = client.ttl(key) / 86400
    if provider == "rekognition":  # reports LabelModelVersion: a change is seen, so entries may live long
        assert 29 < days <= 30
    else:  # no version field: only the TTL (or an epoch bump) retires a silently changed model
        assert 6 < days <= 7


@pytest.mark.parametrize("provider", ["facepp"], indirect=True)
def test_use_cache_false_goes_upstream_and_refreshes_the_entry(provider, fake, make_backend, images, tmp_path):
    backend = make_backend(cache="disk", cache_dir=tmp_path)
    backend.recognize(images.jpeg())
    backend.recognize(images.jpeg(), use_cache=False)
    backend.recognize(images.jpeg(), use_cache=False)
    assert fake.calls == 3
    backend.recognize(images.jpeg())
    assert fake.calls == 3 and backend.stats.snapshot()["cache_hits"] == 1
