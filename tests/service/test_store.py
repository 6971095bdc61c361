"""The store: every key under one prefix, the same primitives on Redis and in process, typed outage errors."""

from __future__ import annotations

import logging
import time
from dataclasses import fields
from pathlib import Path

import pytest

from adacompress.agents.replay_buffer import Transition, TransitionBuffer
from adacompress.config import settings
from adacompress.service.registry import Registry
from adacompress.service.store import (
    STREAM_START,
    EmbeddedStore,
    Keys,
    RedisStore,
    StoreError,
    StoreUnavailable,
    open_store,
)


def all_names(keys: Keys) -> list[str]:
    return [keys.transitions, keys.reader_cursor("learner"), keys.policy_versions, keys.policy_blob("abc"),
            keys.policy_current, keys.policy_channel, keys.daemon_state, keys.response("rekognition:p:d"),
            keys.limit("baidu:qps")]


def test_every_key_and_channel_is_under_the_prefix_and_distinct():
    keys = Keys("tenant-a:")
    names = all_names(keys)
    assert all(name.startswith("tenant-a:") for name in names)
    assert len(set(names)) == len(names)
    assert Keys().prefix == "adacompress:" == settings(env={}).redis_prefix


def test_the_architecture_doc_lists_every_key():
    section = (Path(__file__).parents[2] / "docs" / "architecture.md").read_text().split("## Redis keys", 1)[1]
    keys = Keys("")
    templates = [keys.transitions, keys.reader_cursor("{reader}"), keys.policy_versions,
                 keys.policy_blob("{version}"), keys.policy_current, keys.policy_channel, keys.daemon_state,
                 keys.response("{backend}:{params}:{sha256}"), keys.limit("{name}")]
    for name in templates:
        assert f"`{name}`" in section, name


def test_prefix_and_url_come_from_the_environment(monkeypatch, shared_redis):
    monkeypatch.setenv("ADACOMPRESS_REDIS_URL", shared_redis.url)
    monkeypatch.setenv("ADACOMPRESS_REDIS_PREFIX", "deploy-b:")
    store = open_store()
    assert isinstance(store, RedisStore) and not store.embedded
    assert store.keys.transitions == "deploy-b:transitions"
    assert f"127.0.0.1:{shared_redis.port}" in store.description
    store.close()


def test_without_a_url_the_store_is_embedded_and_the_log_says_so(monkeypatch, caplog):
    monkeypatch.delenv("ADACOMPRESS_REDIS_URL", raising=False)
    with caplog.at_level(logging.WARNING, logger="adacompress.service.store"):
        store = open_store(prefix="x:")
    assert isinstance(store, EmbeddedStore) and store.embedded
    assert any('"event": "embedded_store"' in r.message and "this process only" in r.message for r in caplog.records)


def test_values_and_hashes(store):
    key = store.keys.daemon_state
    assert store.get(store.keys.policy_current) is None and store.hget(key, "mode") is None
    store.set(store.keys.policy_current, b"v1")
    store.hset(key, "mode", b"inference")
    store.hset(key, "p_est", b"0.2")
    assert store.get(store.keys.policy_current) == b"v1"
    assert store.hget(key, "mode") == b"inference"
    assert store.hgetall(key) == {"mode": b"inference", "p_est": b"0.2"}
    store.delete(store.keys.policy_current, key)
    assert store.get(store.keys.policy_current) is None and store.hgetall(key) == {}


def test_stream_reads_after_a_cursor_in_order(store):
    stream = store.keys.transitions
    ids = store.append(stream, [b"a"], 100) + store.append(stream, [b"b", b"c", b"d"], 100)
    assert len(set(ids)) == 4
    assert store.read(stream, STREAM_START, 10) == list(zip(ids, [b"a", b"b", b"c", b"d"], strict=True))
    assert store.read(stream, ids[1], 1) == [(ids[2], b"c")]
    assert store.read(stream, ids[-1], 10) == []
    assert store.length(stream) == 4


def test_stream_keeps_about_the_newest_maxlen_entries(store):
    stream = store.keys.transitions
    payloads = [str(i).encode() for i in range(3000)]
    for start in range(0, 3000, 100):
        store.append(stream, payloads[start:start + 100], 1000)
    length = store.length(stream)
    assert 1000 <= length <= 1200  # Redis trims whole nodes with MAXLEN ~; the embedded deque exactly
    kept = [payload for _, payload in store.read(stream, STREAM_START, 5000)]
    assert kept == payloads[-length:]


def test_published_messages_reach_every_subscriber(store):
    first, second = store.subscribe(store.keys.policy_channel), store.subscribe(store.keys.policy_channel)
    other = store.subscribe(store.keys.prefix + "elsewhere")
    store.publish(store.keys.policy_channel, b"v2")
    assert first.get_message(2.0) == b"v2"
    assert second.get_message(2.0) == b"v2"
    assert other.get_message(0.05) is None
    for subscription in (first, second, other):
        subscription.close()


def test_buffer_and_registry_write_only_under_their_prefix(shared_redis, prefix, make_agent):
    store = RedisStore(shared_redis.url, prefix)
    client = shared_redis.client()
    before = {key for key in client.scan_iter() if not key.startswith(prefix.encode())}
    buffer = TransitionBuffer(store)
    buffer.add(Transition([0.5, 1.0], 1, True, 0.2, "v", 1.0))
    buffer.read()
    registry = Registry(store)
    registry.set_current(registry.publish(make_agent(1).to_bytes()))
    ours = {key.decode() for key in client.scan_iter(match=f"{prefix}*")}
    assert ours == {store.keys.transitions, store.keys.reader_cursor("learner"), store.keys.policy_versions,
                    store.keys.policy_current, store.keys.policy_blob(registry.current_version())}
    assert {key for key in client.scan_iter() if not key.startswith(prefix.encode())} == before


def test_a_redis_that_is_not_there_raises_store_unavailable_at_once(redis_server):
    redis_server.stop()
    store = RedisStore(redis_server.url, "x:")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        store.get(store.keys.policy_current)
    assert time.monotonic() - started < 1.0, "no retries with back-off on a refused connection"
    assert caught.value.code == "store_unavailable"
    assert f"127.0.0.1:{redis_server.port}" in str(caught.value)


def test_a_foreign_value_under_our_key_is_a_store_error_not_an_outage(shared_redis, prefix):
    store = RedisStore(shared_redis.url, prefix)
    store.set(store.keys.transitions, b"not a stream")
    with pytest.raises(StoreError) as caught:
        store.append(store.keys.transitions, [b"t"], 10)
    assert type(caught.value) is StoreError and caught.value.code == "store_error"


def test_the_embedded_store_refuses_a_redis_cursor():
    store = EmbeddedStore()
    with pytest.raises(StoreError, match="embedded"):
        store.read(store.keys.transitions, "1715000000000-3", 10)


def test_settings_document_the_prefix():
    assert "redis_prefix" in {f.name for f in fields(type(settings(env={})))}
    assert settings(env={"ADACOMPRESS_REDIS_PREFIX": " blue: "}).redis_prefix == "blue:"
