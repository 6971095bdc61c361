"""The response cache: a repeated upload costs no call, on disk and in a real Redis, and Redis outages degrade."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from adacompress.cloud_backends.base import BackendUnavailable
from adacompress.cloud_backends.cache import DiskCache, RedisCache
from adacompress.cloud_backends.cost import cost_report
from adacompress.cloud_backends.registry import create_backend

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of our own on the shared Redis; only keys under it are deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {REDIS_URL}")
    prefix = f"adacompress-test:{uuid.uuid4().hex}:"
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


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
        cache.put("b:p:" + "0" * 64, {"labels": [], "raw": {}})
        cache.put("b:p:" + "1" * 64, {"labels": [], "raw": {}})
    assert cache.get("b:p:" + "0" * 64) is None
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1


@pytest.mark.parametrize("provider", ["google"], indirect=True)
def test_corrupt_redis_value_is_a_miss(provider, fake, make_backend, images, redis_prefix):
    backend = make_backend(cache="redis", redis_url=REDIS_URL, cache_prefix=redis_prefix)
    backend.recognize(images.jpeg())
    client = redis.Redis.from_url(REDIS_URL)
    (key,) = client.scan_iter(match=f"{redis_prefix}*")
    client.set(key, b"\x00not json")
    assert backend.recognize(images.jpeg()).labels
    assert fake.calls == 2
