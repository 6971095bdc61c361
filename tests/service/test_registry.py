"""The policy registry: versions by weight hash, a current pointer every process follows, and bad blobs refused.

Swaps are checked with a deadline (`wait_for`), never with a sleep. Where a test says the swap came by
pub/sub, the watcher polls every 30 s, so only the announcement can explain a swap within a second.
"""

from __future__ import annotations

import logging

import pytest

from adacompress.agents.policies import LearnedPolicy
from adacompress.codec import DEFAULT_LADDER, Ladder
from adacompress.service.registry import PolicyMetadata, PolicyNotFound, PolicyRejected, Registry, RegistryError
from adacompress.service.store import RedisStore, StoreUnavailable

SHORT_LADDER = Ladder.parse("jpeg:5,15,35")
ONLY_PUBSUB_S = 30.0


def point_current_raw(store, version: str, announce: bool = True) -> None:
    """Move the pointer as a foreign writer would: no checks."""
    store.set(store.keys.policy_current, version.encode())
    if announce:
        store.publish(store.keys.policy_channel, version.encode())


def test_publish_then_set_current_serves_that_version(store, make_agent):
    registry = Registry(store, ladder=DEFAULT_LADDER)
    agent = make_agent(1)
    version = registry.publish(agent.to_bytes(), parent=None, data_window=("0-1", "0-400"), validation_score=0.81)
    assert version == agent.version
    with pytest.raises(PolicyNotFound):
        registry.current()
    registry.set_current(version)
    served_version, policy = registry.current()
    assert served_version == version and isinstance(policy, LearnedPolicy) and policy.version == version
    assert policy.agent == agent
    metadata = registry.metadata(version)
    assert (metadata.parent, metadata.data_window, metadata.validation_score) == (None, ("0-1", "0-400"), 0.81)
    child = registry.publish(make_agent(2).to_bytes(), parent=version, validation_score=0.9)
    assert [m.version for m in registry.versions()] == [version, child]
    assert registry.metadata(child).parent == version
    assert Registry(store).current()[0] == version, "another instance on the same store agrees"


def test_publishing_garbage_or_another_ladder_is_refused_and_stores_nothing(store, make_agent):
    registry = Registry(store, ladder=DEFAULT_LADDER)
    with pytest.raises(PolicyRejected) as caught:
        registry.publish(b"PK\x03\x04 definitely not an agent")
    assert caught.value.code == "policy_rejected" and "publish" in str(caught.value)
    with pytest.raises(PolicyRejected, match="jpeg:5,15,35"):
        registry.publish(make_agent(3, SHORT_LADDER).to_bytes())
    assert registry.versions() == []


def test_set_current_refuses_unknown_or_unloadable_versions(store, make_agent):
    registry = Registry(store)
    good = registry.publish(make_agent(1).to_bytes())
    registry.set_current(good)
    with pytest.raises(PolicyNotFound) as caught:
        registry.set_current("0" * 64)
    assert caught.value.code == "policy_not_found"
    store.set(store.keys.policy_blob("f" * 64), b"garbage")
    with pytest.raises(PolicyRejected):
        registry.set_current("f" * 64)
    assert registry.current_version() == good


@pytest.mark.parametrize("bad", ["garbage", "truncated", "foreign", "other-ladder"])
def test_a_bad_blob_is_refused_and_the_serving_version_does_not_change(store, make_agent, bad, wait_for, caplog):
    registry = Registry(store)
    good = registry.publish(make_agent(1).to_bytes())
    registry.set_current(good)
    other = make_agent(7, SHORT_LADDER if bad == "other-ladder" else DEFAULT_LADDER)
    blob = {"garbage": b"\x00\xffnot a zip at all", "truncated": make_agent(5).to_bytes()[:-40],
            "foreign": make_agent(6).to_bytes(), "other-ladder": other.to_bytes()}[bad]
    version = other.version if bad == "other-ladder" else "e" * 64
    store.set(store.keys.policy_blob(version), blob)

    watcher = Registry(store).watch(poll_s=0.05)
    try:
        assert watcher.version == good
        with caplog.at_level(logging.ERROR, logger="adacompress.service.registry"):
            point_current_raw(store, version)
            assert wait_for(lambda: watcher.last_error is not None, 5.0)
            assert wait_for(lambda: sum('"policy_rejected"' in r.message for r in caplog.records) >= 1, 5.0)
        assert isinstance(watcher.last_error, PolicyRejected) and watcher.last_error.code == "policy_rejected"
        assert version in str(watcher.last_error) or bad == "other-ladder"
        assert watcher.version == good and watcher.policy.version == good
        assert not watcher.refresh() and watcher.version == good
        assert sum('"policy_rejected"' in r.message for r in caplog.records) == 1, "logged once, not every poll"
    finally:
        watcher.stop()
    if bad != "other-ladder":  # without a configured ladder only the serving process knows the ladder
        with pytest.raises(PolicyRejected):
            Registry(store).current()


def test_a_watcher_takes_the_version_once_it_is_republished_intact(store, make_agent, wait_for):
    registry = Registry(store)
    registry.set_current(registry.publish(make_agent(1).to_bytes()))
    fixed = make_agent(2)
    store.set(store.keys.policy_blob(fixed.version), b"corrupted in transit")
    with registry.watch(poll_s=0.05) as watcher:
        point_current_raw(store, fixed.version)
        assert wait_for(lambda: watcher.last_error is not None, 5.0)
        registry.publish(fixed.to_bytes())
        assert wait_for(lambda: watcher.version == fixed.version, 5.0)
        assert watcher.last_error is None


def test_set_current_reaches_a_second_registry_by_pubsub_within_a_second(store, make_agent, wait_for):
    learner, replica = Registry(store), Registry(store)
    versions = [learner.publish(make_agent(seed).to_bytes()) for seed in (1, 2, 3)]
    learner.set_current(versions[0])
    changes: list[str] = []
    with replica.watch(poll_s=ONLY_PUBSUB_S, on_change=lambda version, policy: changes.append(version)) as watcher:
        assert watcher.version == versions[0]
        assert wait_for(lambda: _subscribers(store) >= 1, 5.0)
        learner.set_current(versions[1])
        assert wait_for(lambda: watcher.version == versions[1], 5.0)
        # The watcher has looked at the pointer since it subscribed, so its next poll is 30 s away:
        learner.set_current(versions[2])
        assert wait_for(lambda: watcher.version == versions[2], 1.0), "swapped within a second of set_current"
        assert watcher.policy.version == versions[2] and changes == versions


def _subscribers(store) -> int:
    """Subscribers on the policy channel, so the test announces only once the watcher listens."""
    if isinstance(store, RedisStore):
        return dict(store.client.pubsub_numsub(store.keys.policy_channel)).get(store.keys.policy_channel.encode(), 0)
    return len(store._subscribers.get(store.keys.policy_channel, []))


def test_a_pointer_moved_without_an_announcement_is_found_by_polling(store, make_agent, wait_for):
    registry = Registry(store)
    registry.set_current(registry.publish(make_agent(1).to_bytes()))
    second = registry.publish(make_agent(2).to_bytes())
    with registry.watch(poll_s=0.1) as watcher:
        point_current_raw(store, second, announce=False)
        assert wait_for(lambda: watcher.version == second, 2.0)


def test_a_failing_listener_does_not_stop_the_watcher(store, make_agent, wait_for, caplog):
    registry = Registry(store)
    registry.set_current(registry.publish(make_agent(1).to_bytes()))

    def broken(version: str, policy: LearnedPolicy) -> None:
        raise RuntimeError("listener bug")

    with caplog.at_level(logging.ERROR, logger="adacompress.service.registry"), \
            registry.watch(poll_s=0.05, on_change=broken) as watcher:
        for seed in (2, 3):
            version = registry.publish(make_agent(seed).to_bytes())
            registry.set_current(version)
            assert wait_for(lambda v=version: watcher.version == v, 5.0)
    assert sum('"policy_listener_failed"' in r.message for r in caplog.records) == 3, "the first version, then 2"


def test_the_watcher_rides_out_a_redis_restart(redis_server, prefix, make_agent, wait_for):
    store = RedisStore(redis_server.url, prefix)
    registry = Registry(store)
    first = registry.publish(make_agent(1).to_bytes())
    registry.set_current(first)
    with Registry(RedisStore(redis_server.url, prefix)).watch(poll_s=0.1) as watcher:
        redis_server.stop()
        with pytest.raises(StoreUnavailable):
            registry.current()
        assert not watcher.refresh() and watcher.version == first, "keeps serving while Redis is away"
        redis_server.start()  # empty: the learner publishes again
        second = registry.publish(make_agent(2).to_bytes())
        registry.set_current(second)
        assert wait_for(lambda: watcher.version == second, 5.0)


def test_a_watcher_with_nothing_published_serves_nothing_until_there_is(store, make_agent, wait_for):
    registry = Registry(store)
    with registry.watch(poll_s=0.05) as watcher:
        assert watcher.policy is None and watcher.version is None and watcher.last_error is None
        version = registry.publish(make_agent(4).to_bytes())
        registry.set_current(version)
        assert wait_for(lambda: watcher.version == version, 5.0)


def test_metadata_round_trips_and_foreign_metadata_is_a_typed_error(store):
    metadata = PolicyMetadata("v", "p", ("1-0", "9-0"), 0.5, 12.5)
    assert PolicyMetadata.from_json(metadata.to_json()) == metadata
    store.hset(store.keys.policy_versions, "x", b"[1, 2]")
    with pytest.raises(RegistryError) as caught:
        Registry(store).metadata("x")
    assert caught.value.code == "registry_error"
