"""The transition buffer: producers that never fail a request, one learner that resumes, nothing lost silently.

Outages are real: the test's own redis-server is terminated and started again on the same port. That
server keeps no data on disk, so where a test needs the stream to survive the restart it asks for a
snapshot (`SAVE`) first, as a Redis with persistence would keep it.
"""

from __future__ import annotations

import logging
import runpy
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from adacompress.agents.replay_buffer import Transition, TransitionBuffer, TransitionError
from adacompress.service.store import STREAM_START, EmbeddedStore, RedisStore, StoreUnavailable

PRODUCER_SCRIPT = Path(__file__).with_name("_producer.py")
tagged = runpy.run_path(str(PRODUCER_SCRIPT))["tagged"]


def numbered(seqs: range | list[int]) -> list[Transition]:
    return [tagged(0, seq) for seq in seqs]


def test_what_producers_add_the_learner_reads_in_order(store):
    producer, learner = TransitionBuffer(store), TransitionBuffer(store)
    sent = numbered(range(30))
    producer.add(sent[0])
    producer.add_many(sent[1:])
    assert (producer.added, producer.pending, producer.dropped) == (30, 0, 0)
    assert learner.read(count=10) == sent[:10]
    assert learner.read() == sent[10:]
    assert learner.read() == []
    assert len(learner) == 30 and len(producer) == 0


def test_a_restarted_reader_resumes_from_its_saved_cursor(store):
    producer = TransitionBuffer(store)
    producer.add_many(numbered(range(20)))
    first = TransitionBuffer(store, reader="learner")
    assert first.read(count=12) == numbered(range(12))
    producer.add_many(numbered(range(20, 25)))
    restarted = TransitionBuffer(store, reader="learner")
    assert restarted.cursor is None
    assert restarted.read() == numbered(range(12, 25))
    assert restarted.cursor == first.store.get(store.keys.reader_cursor("learner")).decode()
    assert TransitionBuffer(store, reader="auditor").read() == numbered(range(25)), "another reader starts at 0"


def test_sampling_is_seeded_and_draws_from_the_newest_capacity(store):
    producer, learner = TransitionBuffer(store), TransitionBuffer(store, capacity=50)
    producer.add_many(numbered(range(80)))
    while learner.read(count=7):
        pass
    assert len(learner) == 50
    batch = learner.sample(64, np.random.default_rng(3))
    assert len(batch) == 64
    assert {t.bytes_sent for t in batch} <= set(range(30, 80))
    assert len({t.bytes_sent for t in batch}) > 20
    assert batch == learner.sample(64, np.random.default_rng(3))
    assert batch != learner.sample(64, np.random.default_rng(4))
    with pytest.raises(TransitionError, match="empty"):
        TransitionBuffer(store, reader="new").sample(1, np.random.default_rng(0))


def test_the_stream_is_capped_at_about_capacity(store):
    producer = TransitionBuffer(store, capacity=200)
    producer.add_many(numbered(range(1000)))
    length = store.length(store.keys.transitions)
    assert 200 <= length <= 320
    assert TransitionBuffer(store).read(count=2000) == numbered(range(1000 - length, 1000))


def test_an_entry_that_is_not_a_transition_is_skipped_counted_and_logged(store, caplog):
    producer = TransitionBuffer(store)
    producer.add(tagged(0, 0))
    store.append(store.keys.transitions, [b"garbage from elsewhere"], 1000)
    producer.add(tagged(0, 1))
    learner = TransitionBuffer(store)
    with caplog.at_level(logging.WARNING, logger="adacompress.agents.replay_buffer"):
        assert learner.read() == numbered(range(2))
    assert learner.skipped == 1
    assert any('"event": "transition_skipped"' in record.message for record in caplog.records)
    assert learner.read() == []


def test_concurrent_threads_of_one_producer_lose_nothing(store):
    producer = TransitionBuffer(store)

    def work(thread: int) -> None:
        for seq in range(200):
            producer.add(tagged(thread, seq))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert producer.pending == 0 and producer.added == 800
    got = TransitionBuffer(store).read(count=5000)
    for thread in range(4):
        assert [t for t in got if t.reference_bytes == thread] == [tagged(thread, seq) for seq in range(200)]


def test_redis_killed_mid_stream_buffers_counts_drops_and_flushes_in_order(redis_server, prefix, caplog):
    producer = TransitionBuffer(RedisStore(redis_server.url, prefix), backlog_limit=50, retry_s=60.0)
    learner = TransitionBuffer(RedisStore(redis_server.url, prefix))
    sent = numbered(range(180))
    for transition in sent[:100]:
        producer.add(transition)
    assert learner.read(count=60) == sent[:60]
    redis_server.client().save()  # the stream survives the restart, as with persistence
    redis_server.stop()

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="adacompress.agents.replay_buffer"):
        for transition in sent[100:]:
            producer.add(transition)  # must neither raise nor wait on the dead server
    assert time.monotonic() - started < 5.0
    assert (producer.added, producer.pending, producer.dropped) == (100, 50, 30)
    assert sum("is unavailable" in r.getMessage() for r in caplog.records) == 1, "logged once per outage"
    with pytest.raises(StoreUnavailable):
        learner.read()

    redis_server.start()
    assert producer.flush()
    assert (producer.added, producer.pending, producer.dropped) == (150, 0, 30)
    restarted = TransitionBuffer(RedisStore(redis_server.url, prefix))
    assert restarted.read(count=1000) == sent[60:100] + sent[130:180], "the oldest waiting ones were dropped"


def test_the_next_add_after_an_outage_flushes_the_backlog_first(redis_server, prefix):
    store = RedisStore(redis_server.url, prefix)
    redis_server.stop()
    producer = TransitionBuffer(store, retry_s=0.0)
    sent = numbered(range(10))
    for transition in sent[:9]:
        producer.add(transition)
    assert (producer.pending, producer.added) == (9, 0)
    redis_server.start()
    producer.add(sent[9])
    assert (producer.pending, producer.added, producer.dropped) == (0, 10, 0)
    assert TransitionBuffer(store).read() == sent


def test_a_foreign_value_under_the_stream_key_never_reaches_the_request_path(shared_redis, prefix):
    store = RedisStore(shared_redis.url, prefix)
    store.set(store.keys.transitions, b"someone else's string")
    producer = TransitionBuffer(store, backlog_limit=3, retry_s=0.0)
    for transition in numbered(range(5)):
        producer.add(transition)
    assert (producer.pending, producer.dropped, producer.added) == (3, 2, 0)
    store.delete(store.keys.transitions)
    assert producer.flush()
    assert TransitionBuffer(store).read() == numbered(range(2, 5))


def test_two_producer_processes_and_one_reader_lose_duplicate_and_tear_nothing(shared_redis, prefix):
    count = 1500
    producers = [subprocess.Popen([sys.executable, str(PRODUCER_SCRIPT), shared_redis.url, prefix, str(p), str(count)])
                 for p in (1, 2)]
    reader = TransitionBuffer(RedisStore(shared_redis.url, prefix))
    got: list[Transition] = []
    read_while_writing = 0
    deadline = time.monotonic() + 120
    while len(got) < 2 * count and time.monotonic() < deadline:
        batch = reader.read(count=300)
        got += batch
        read_while_writing += len(batch) if any(p.poll() is None for p in producers) else 0
        if not batch:
            time.sleep(0.005)
    assert [p.wait(timeout=60) for p in producers] == [0, 0]
    assert read_while_writing > 0, "the reader ran concurrently with the producers"
    got += reader.read(count=10_000)
    assert len(got) == 2 * count and reader.skipped == 0
    for p in (1, 2):
        mine = [t for t in got if t.policy_version == f"producer-{p}"]
        assert [t.bytes_sent for t in mine] == list(range(count)), "every one, once, in the order added"
        assert all(t == tagged(p, t.bytes_sent) for t in mine), "contents intact"


def test_the_embedded_buffer_is_a_bounded_deque():
    store = EmbeddedStore()
    producer = TransitionBuffer(store, capacity=100)
    producer.add_many(numbered(range(250)))
    assert store.length(store.keys.transitions) == 100 and producer.dropped == 0
    assert [t.bytes_sent for t in TransitionBuffer(store).read(count=500)] == list(range(150, 250))
    assert store.read(store.keys.transitions, STREAM_START, 1)[0][0] == "0-151"
