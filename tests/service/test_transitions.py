"""Transitions: a compact, checked, pickle-free record, and a pure conversion to SB3 arrays for any alpha, beta."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from adacompress.agents.policies import Decision
from adacompress.agents.replay_buffer import ReplayArrays, Transition, TransitionError, replay_arrays
from adacompress.codec import Action


def make(seq: int, dim: int = 31, **changes) -> Transition:
    rng = np.random.default_rng(seq)
    fields = {"observation": rng.random(dim, dtype=np.float32), "rung": seq % 11, "hit": seq % 3 != 0,
              "size_ratio": 0.05 + (seq % 7) / 10, "policy_version": f"version-{seq % 2}", "time": 1.7e9 + seq,
              "reference_bytes": 20_000 + seq, "bytes_sent": 3_000 + seq}
    return Transition(**{**fields, **changes})


@pytest.mark.parametrize("changes", [{}, {"reference_bytes": None, "bytes_sent": None}, {"dim": 0},
                                     {"policy_version": "fixed:15 ✓"}, {"hit": False, "rung": 0, "size_ratio": 0.0}],
                         ids=["full", "no-sizes", "empty-observation", "unicode-version", "zeros"])
def test_bytes_round_trip_is_exact(changes):
    transition = make(5, **changes)
    data = transition.to_bytes()
    back = Transition.from_bytes(data)
    assert back == transition
    assert back.observation.dtype == np.float32 and np.array_equal(back.observation, transition.observation)
    assert (back.rung, back.hit, back.size_ratio, back.policy_version, back.time, back.reference_bytes,
            back.bytes_sent) == (transition.rung, transition.hit, transition.size_ratio, transition.policy_version,
                                 transition.time, transition.reference_bytes, transition.bytes_sent)


def test_the_record_is_compact():
    transition = make(1, policy_version="a" * 64)
    assert len(transition.to_bytes()) == 48 + 64 + 4 * 31
    assert len(transition.to_bytes()) < len(pickle.dumps(transition))


@pytest.mark.parametrize("damage", ["truncated-header", "torn-body", "extra-byte", "wrong-magic", "pickle",
                                    "bad-utf8", "nan-ratio"])
def test_damaged_or_foreign_bytes_are_refused(damage):
    data = make(2).to_bytes()
    damaged = {
        "truncated-header": data[:20],
        "torn-body": data[:-3],
        "extra-byte": data + b"\0",
        "wrong-magic": b"XXXX" + data[4:],
        "pickle": pickle.dumps(make(2)),
        "bad-utf8": data[:48] + b"\xff" + data[49:],
        "nan-ratio": data[:10] + np.float64("nan").tobytes() + data[18:],
    }[damage]
    with pytest.raises(TransitionError) as caught:
        Transition.from_bytes(damaged)
    assert caught.value.code == "bad_transition"


@pytest.mark.parametrize("changes, message", [({"observation": np.zeros((2, 3))}, "1-d"), ({"rung": -1}, "negative"),
                                              ({"size_ratio": float("inf")}, "finite"),
                                              ({"size_ratio": -0.1}, ">= 0")])
def test_invalid_transitions_are_refused_when_made(changes, message):
    with pytest.raises(TransitionError, match=message):
        make(3, **changes)


def test_the_observation_is_a_private_read_only_float32_copy():
    source = np.arange(4, dtype=np.float64)
    transition = Transition(source, 1, True, 0.3, "v", 0.0)
    source[0] = 99
    assert transition.observation.dtype == np.float32 and transition.observation[0] == 0
    with pytest.raises(ValueError):
        transition.observation[0] = 1


def test_a_decision_becomes_a_transition():
    decision = Decision(Action("jpeg", 10), 1, np.ones(31, np.float32), b"x" * 500, 10_000, "v123")
    estimated = Transition.from_decision(decision, hit=True, at=5.0)
    assert (estimated.rung, estimated.hit, estimated.size_ratio, estimated.policy_version, estimated.time,
            estimated.reference_bytes, estimated.bytes_sent) == (1, True, 0.05, "v123", 5.0, 10_000, 500)
    assert Transition.from_decision(decision, hit=False, reference_bytes=2_000).size_ratio == 0.25
    blind = Decision(Action("jpeg", 15), 0, None, b"x", 100, "fixed:15")
    with pytest.raises(TransitionError, match="no observation"):
        Transition.from_decision(blind, hit=True)


@pytest.mark.parametrize("alpha, beta", [(1.0, 1.0), (1.0, 0.25), (4.0, 1.0)])
def test_replay_arrays_score_the_records_with_the_weights_given(alpha, beta):
    transitions = [make(i) for i in range(12)]
    arrays = replay_arrays(transitions, alpha, beta)
    expected = [alpha * t.hit - beta * t.size_ratio for t in transitions]
    np.testing.assert_allclose(arrays.rewards[:, 0], expected, rtol=1e-6)
    assert arrays.observations.shape == arrays.next_observations.shape == (12, 1, 31)
    assert arrays.observations.dtype == np.float32
    assert arrays.actions.shape == (12, 1, 1) and arrays.actions.dtype == np.int64
    assert arrays.actions[:, 0, 0].tolist() == [t.rung for t in transitions]
    assert arrays.dones.tolist() == [[1.0]] * 12 and arrays.timeouts.tolist() == [[0.0]] * 12


def test_replay_arrays_is_pure_so_records_outlive_a_change_of_weights():
    transitions = [make(i) for i in range(6)]
    before = [t.to_bytes() for t in transitions]
    paper = replay_arrays(transitions, 1.0, 1.0)
    cheaper = replay_arrays(transitions, 1.0, 2.0)
    assert [t.to_bytes() for t in transitions] == before
    assert not np.allclose(paper.rewards, cheaper.rewards)
    np.testing.assert_array_equal(replay_arrays(transitions, 1.0, 1.0).rewards, paper.rewards)
    paper.observations[0, 0, 0] = -5.0  # the arrays are the caller's: writing them leaves the records alone
    assert transitions[0].observation[0] != -5.0 and paper.next_observations[0, 0, 0] != -5.0


def test_replay_arrays_refuse_nothing_or_mixed_observation_sizes():
    with pytest.raises(TransitionError, match="read"):
        replay_arrays([])
    with pytest.raises(TransitionError, match=r"\[19, 31\]"):
        replay_arrays([make(1), make(2, dim=19)])


def test_replay_arrays_fit_an_sb3_replay_buffer():
    import gymnasium as gym
    from stable_baselines3.common.buffers import ReplayBuffer  # imported here: it pulls in torch

    transitions = [make(i) for i in range(40)]
    arrays = replay_arrays(transitions, 1.0, 0.5)
    buffer = ReplayBuffer(64, gym.spaces.Box(0.0, 10.0, (31,), np.float32), gym.spaces.Discrete(11), device="cpu")
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        target, source = getattr(buffer, name), getattr(arrays, name)
        assert target[:40].shape == source.shape and target.dtype == source.dtype, name
        target[:40] = source
    buffer.pos, buffer.full = 40, False
    batch = buffer.sample(16)
    rows = {t.observation.tobytes(): t for t in transitions}
    for obs, action, reward in zip(batch.observations.numpy(), batch.actions.numpy(), batch.rewards.numpy(),
                                   strict=True):
        record = rows[obs.astype(np.float32).tobytes()]
        assert int(action[0]) == record.rung
        assert reward[0] == pytest.approx(record.hit - 0.5 * record.size_ratio, rel=1e-6)
    assert isinstance(arrays, ReplayArrays)
