"""The learner: retrains the current agent on transitions, publishes only what validates, resumes after a restart."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from adacompress.agents.agent_file import AgentFile
from adacompress.agents.learner import Learner, LearnerConfig, LearnerThread, validation_score
from adacompress.agents.policies import LearnedPolicy, load_policy
from adacompress.agents.qnet import NumpyQNetwork
from adacompress.agents.replay_buffer import Transition, TransitionBuffer
from adacompress.cli import main
from adacompress.service.registry import Registry
from adacompress.service.store import EmbeddedStore, RedisStore, Store
from tests.conftest import textured

RUNGS = 11
"""Rungs of the shipped agent's ladder."""
CONFIG = LearnerConfig(min_new_transitions=10_000, min_transitions=20, gradient_steps=300)


@pytest.fixture(scope="module")
def shipped() -> LearnedPolicy:
    policy = load_policy("pretrained:local-lite2")
    assert len(policy.ladder) == RUNGS
    return policy


@pytest.fixture(scope="module")
def decided(shipped: LearnedPolicy) -> list[Transition]:
    """One real transition per generated image: the shipped agent's own observation and choice."""
    return [Transition.from_decision(shipped.decide(textured(seed, (96 + 16 * seed, 72 + 8 * seed))), hit=True,
                                     at=1.7e9 + seed) for seed in range(6)]


def hit_probability(policy: LearnedPolicy, observations: np.ndarray, rung: int) -> np.ndarray:
    """The known-cost head's P(hit) at `rung`: Q plus the size term it subtracted."""
    q = NumpyQNetwork(policy.agent)(observations)[:, rung]
    return q + policy.agent.config.size_weight * observations[:, rung - RUNGS]


def every_rung(decided: list[Transition], hit, repeats: int) -> list[Transition]:
    """`decided` at every rung, `repeats` times, with `hit(observation, rung)` as the outcome."""
    return [replace(t, rung=rung, hit=bool(hit(t.observation, rung)), size_ratio=float(t.observation[rung - RUNGS]))
            for _ in range(repeats) for t in decided for rung in range(RUNGS)]


def seeded(store: Store, shipped: LearnedPolicy) -> tuple[Registry, str]:
    registry = Registry(store)
    version = registry.publish(shipped.agent.to_bytes())
    registry.set_current(version)
    return registry, version


@pytest.fixture
def embedded(prefix: str) -> EmbeddedStore:
    return EmbeddedStore(prefix)


def test_contradicting_transitions_publish_a_candidate_that_learned_them(store, shipped, decided):
    registry, parent = seeded(store, shipped)
    observations = np.stack([t.observation for t in decided])
    q25 = 3
    believed = hit_probability(shipped, observations, q25).mean()
    assert believed > 0.7  # the shipped agent believes q=25 keeps the answer; every transition says it does not
    TransitionBuffer(store).add_many(every_rung(decided, lambda _, rung: rung > q25, repeats=3))

    result = Learner(store, registry, config=CONFIG).step(retrain=True)

    assert result is not None and result.published and result.candidate_score > result.parent_score
    assert registry.current_version() == result.current == result.candidate != parent
    metadata = registry.metadata(result.candidate)
    assert metadata.parent == parent and metadata.validation_score == pytest.approx(result.candidate_score)
    assert metadata.data_window == result.data_window and result.data_window  # what it trained on, recorded
    assert hit_probability(registry.current()[1], observations, q25).mean() < min(0.3, believed)
    assert (result.trained_on, result.held_out) == (158, 40)


class CorruptingLearner(Learner):
    """Trains nothing and flips the hit logits: a candidate sure of the opposite of what it knew."""

    def _train(self, model, transitions) -> None:
        self.trained_on = transitions
        with torch.no_grad():
            for name, tensor in model.q_net.q_net.named_parameters():
                if name.startswith(f"{len(model.q_net.q_net) - 1}."):
                    tensor.mul_(-1)


def test_a_candidate_that_validates_worse_is_not_published(embedded, shipped, decided, caplog):
    registry, parent = seeded(embedded, shipped)
    agrees = every_rung(decided, lambda obs, rung: hit_probability(shipped, obs[None], rung)[0] > 0.5, repeats=2)
    TransitionBuffer(embedded).add_many(agrees)

    with caplog.at_level(logging.WARNING, logger="adacompress.agents.learner"):
        result = CorruptingLearner(embedded, registry, config=CONFIG).step(retrain=True)

    assert result is not None and not result.published
    assert result.candidate_score < result.parent_score and result.candidate != parent
    assert registry.current_version() == result.current == parent
    assert [m.version for m in registry.versions()] == [parent]
    assert '"event": "candidate_rejected"' in caplog.text


def test_a_restarted_learner_resumes_after_what_was_consumed(embedded, shipped, decided):
    registry, _ = seeded(embedded, shipped)
    producer = TransitionBuffer(embedded)
    producer.add_many(every_rung(decided, lambda _, rung: rung > 3, repeats=1))
    first = Learner(embedded, registry, config=CONFIG)
    assert first.step(retrain=True) is not None
    after_first = registry.current_version()

    restarted = Learner(embedded, registry, config=CONFIG)
    assert restarted.step(retrain=True) is None  # everything was consumed before the restart
    assert len(restarted.recent) == 0 and restarted.buffer.cursor == first.buffer.cursor
    assert registry.current_version() == after_first

    producer.add_many(every_rung(decided[:3], lambda _, rung: rung >= 4, repeats=1))
    result = restarted.step(retrain=True)
    assert result is not None and result.trained_on + result.held_out == 33


def test_enough_new_transitions_start_a_retrain_unasked(embedded, shipped, decided):
    registry, _ = seeded(embedded, shipped)
    learner = Learner(embedded, registry, config=replace(CONFIG, min_new_transitions=66, gradient_steps=5))
    TransitionBuffer(embedded).add_many(every_rung(decided[:5], lambda _, rung: rung > 3, repeats=1))
    assert learner.step() is None and learner.new_since_retrain == 55
    TransitionBuffer(embedded).add_many(every_rung(decided[:1], lambda _, rung: rung > 3, repeats=1))
    assert learner.step() is not None and learner.new_since_retrain == 0


def test_validation_score_is_one_minus_brier(shipped, decided):
    probability = hit_probability(shipped, decided[0].observation[None], 4)[0]
    transitions = [replace(decided[0], rung=4, hit=True), replace(decided[0], rung=4, hit=False)]
    expected = 1 - ((probability - 1) ** 2 + probability ** 2) / 2
    assert validation_score(shipped.agent, transitions) == pytest.approx(expected, abs=1e-5)


def test_learn_once_prints_the_retrain(shared_redis, prefix, shipped, decided, capsys):
    store = RedisStore(shared_redis.url, prefix)
    try:
        _, parent = seeded(store, shipped)
        TransitionBuffer(store).add_many(every_rung(decided, lambda _, rung: rung > 3, repeats=1))

        code = main(["learn", "--redis", shared_redis.url, "--prefix", prefix, "--once",
                     "--min-transitions", "40", "--gradient-steps", "300"])

        line = capsys.readouterr().out.strip()
        assert code == 0
        assert line.startswith("published ") and "trained on 53, validated on 13" in line
        assert Registry(store).current_version() != parent
    finally:
        store.delete(*shared_redis.client().keys(f"{prefix}*"))
        store.close()


def test_learn_help_ends_with_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["learn", "--help"])
    assert capsys.readouterr().out.rstrip().splitlines()[-1].strip().startswith("adacompress learn --redis ")


def test_the_daemons_retrain_request_starts_a_retrain(embedded, shipped, decided):
    registry, _ = seeded(embedded, shipped)
    learner = Learner(embedded, registry, config=replace(CONFIG, gradient_steps=5))
    TransitionBuffer(embedded).add_many(every_rung(decided[:3], lambda _, rung: rung > 3, repeats=1))
    assert learner.step() is None
    TransitionBuffer(embedded).add_many(every_rung(decided[3:], lambda _, rung: rung > 3, repeats=1))
    embedded.hset(embedded.keys.daemon_state, "retrain_requested", b"1")
    assert learner.step() is not None


def flipped(agent: AgentFile) -> AgentFile:
    """What `CorruptingLearner` makes of `agent`: the last layer of the hit MLP negated."""
    weights = agent.weights()
    last = max(int(name.split(".")[1]) for name in weights if name.startswith("q_net."))
    flipped_weights = {name: -w if name.startswith(f"q_net.{last}.") else w for name, w in weights.items()}
    return replace(agent, weights_npz=AgentFile.pack_weights(flipped_weights))


def test_inferred_records_train_but_never_validate(embedded, shipped, decided):
    registry, parent = seeded(embedded, shipped)
    uploaded = every_rung(decided, lambda obs, rung: hit_probability(shipped, obs[None], rung)[0] > 0.5, repeats=2)
    inferred = [replace(t, hit=not t.hit, bytes_sent=None) for t in uploaded]  # never uploaded, and contradicting
    TransitionBuffer(embedded).add_many(uploaded[:66] + inferred[:66] + uploaded[66:] + inferred[66:])
    held_uploads, held_inferred = uploaded[-26:], inferred[66:]  # from the newest 20% of the 132 uploads on
    corrupted = flipped(shipped.agent)
    # The verdict the inferred records would give is the opposite of the uploads' verdict:
    assert validation_score(corrupted, held_uploads) < validation_score(shipped.agent, held_uploads)
    everything = held_uploads + held_inferred
    assert validation_score(corrupted, everything) > validation_score(shipped.agent, everything)

    learner = CorruptingLearner(embedded, registry, config=CONFIG)
    result = learner.step(retrain=True)

    assert result is not None and not result.published and registry.current_version() == parent
    assert result.held_out == 26 and result.trained_on == 66 + 66 + 40
    assert result.parent_score == pytest.approx(validation_score(shipped.agent, held_uploads), abs=1e-6)
    assert result.candidate_score == pytest.approx(validation_score(corrupted, held_uploads), abs=1e-6)
    assert sum(t.bytes_sent is None for t in learner.trained_on) == 66  # inferred records do train


def test_the_learner_thread_publishes_and_stops_without_waiting_out_its_interval(embedded, shipped, decided,
                                                                                 wait_for):
    registry, parent = seeded(embedded, shipped)
    TransitionBuffer(embedded).add_many(every_rung(decided, lambda _, rung: rung > 3, repeats=1))
    learner = Learner(embedded, registry, config=replace(CONFIG, min_new_transitions=60, gradient_steps=20))
    thread = LearnerThread(learner, interval_s=60.0).start()
    try:
        assert wait_for(lambda: registry.current_version() != parent, 120.0)
    finally:
        asked = time.monotonic()
        assert thread.stop(timeout_s=30.0)
    assert time.monotonic() - asked < 5.0 and not thread.alive  # woken from its 60 s wait, not after it
    assert registry.metadata(registry.current_version()).parent == parent


def test_the_learner_thread_rides_out_a_store_outage(redis_server, prefix, shipped, decided, wait_for, caplog):
    store = RedisStore(redis_server.url, prefix)
    redis_server.stop()
    learner = Learner(store, Registry(store), config=replace(CONFIG, min_new_transitions=60, gradient_steps=20))
    with caplog.at_level(logging.WARNING, logger="adacompress.agents.learner"):
        thread = LearnerThread(learner, interval_s=0.05).start()
        try:
            assert wait_for(lambda: caplog.text.count('"event": "learner_store_unavailable"') >= 2, 30.0)
            redis_server.start()  # empty: the server keeps nothing across a restart
            registry, parent = seeded(store, shipped)
            TransitionBuffer(store).add_many(every_rung(decided, lambda _, rung: rung > 3, repeats=1))
            assert wait_for(lambda: registry.current_version() != parent, 120.0)
        finally:
            assert thread.stop(timeout_s=30.0)
            store.close()
