"""StreamReplayBuffer: SB3's add/sample contract on the transitions stream, in Redis and in process."""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Callable, Iterator

import gymnasium as gym
import numpy as np
import pytest
import redis
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer

from adacompress.agents.agent_file import AgentConfig
from adacompress.agents.dqn import build_dqn
from adacompress.agents.replay_buffer import Transition, TransitionBuffer
from adacompress.agents.sb3_buffer import StreamBufferError, StreamReplayBuffer
from adacompress.service.store import RedisStore

REDIS_URL = "redis://127.0.0.1:6379/0"
DIM, RUNGS = 4, 3
OBSERVATIONS = spaces.Box(0.0, 1.0, (DIM,), np.float32)
ACTIONS = spaces.Discrete(RUNGS)


class OneStepEnv(gym.Env):
    """A random observation; rung `a` keeps the answer when a >= 1 and sends (a + 1) / 3 of the reference's bytes."""

    observation_space = OBSERVATIONS
    action_space = ACTIONS

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self.np_random.random(DIM, dtype=np.float32), {}

    def step(self, action):
        hit, sent = int(action) >= 1, 100 * (int(action) + 1)
        return (self.np_random.random(DIM, dtype=np.float32), float(hit) - sent / 300, True, False,
                {"hit": hit, "bytes": sent, "reference_bytes": 300})


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own on the shared Redis; only keys under it are deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"these tests need Redis at {REDIS_URL} ({exc}); .ci/run starts one")
    prefix = f"adacompress-test:{uuid.uuid4().hex}:"
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=["redis", "embedded"])
def make_buffer(request: pytest.FixtureRequest, prefix: str) -> Iterator[Callable[..., StreamReplayBuffer]]:
    """`make_buffer(buffer_size=100, **kwargs)`: buffers on the same stream (Redis), or each on its own (embedded)."""
    made: list[StreamReplayBuffer] = []

    def make(buffer_size: int = 100, **kwargs) -> StreamReplayBuffer:
        url = REDIS_URL if request.param == "redis" else None
        made.append(StreamReplayBuffer(buffer_size, OBSERVATIONS, ACTIONS, device="cpu", redis_url=url,
                                       prefix=prefix, **kwargs))
        return made[-1]

    yield make
    for buffer in made:
        buffer.close()


def step(buffer: ReplayBuffer, rung: int, hit: bool, sent: int, reference: int = 100, reward: float = 0.0,
         observation: np.ndarray | None = None) -> np.ndarray:
    """`buffer.add` one env step as SB3's DQN would (n_envs = 1); the observation it added."""
    obs = np.full((1, DIM), rung / 10, np.float32) if observation is None else observation[None]
    buffer.add(obs, obs.copy(), np.array([[rung]]), np.array([reward], np.float32), np.array([True]),
               [{"hit": hit, "bytes": sent, "reference_bytes": reference}])
    return obs[0]


def test_samples_have_sb3s_types_shapes_and_values(make_buffer):
    ours = make_buffer()
    theirs = ReplayBuffer(100, OBSERVATIONS, ACTIONS, device="cpu")
    for buffer in (ours, theirs):
        step(buffer, rung=2, hit=True, sent=30, reward=1.0 - 0.3)

    assert ours.size() == theirs.size() == 1 and (ours.pos, ours.full) == (theirs.pos, theirs.full)
    got, expected = ours.sample(8), theirs.sample(8)
    for name in ("observations", "actions", "next_observations", "dones", "rewards"):
        mine, sb3 = getattr(got, name), getattr(expected, name)
        assert (mine.shape, mine.dtype, mine.device) == (sb3.shape, sb3.dtype, sb3.device), name
        torch.testing.assert_close(mine, sb3, msg=name)
    assert got.discounts is None


def test_rewards_come_from_hit_and_size_with_the_weights_set_when_sampling(make_buffer):
    buffer = make_buffer(alpha=1.0, beta=0.5)
    step(buffer, rung=0, hit=True, sent=30)  # the env's reward (0) is not what training sees
    step(buffer, rung=1, hit=False, sent=80)

    def rewards_by_rung() -> dict[int, set[float]]:
        batch = buffer.sample(64)
        found: dict[int, set[float]] = {}
        for rung, reward in zip(batch.actions[:, 0].tolist(), batch.rewards[:, 0].tolist(), strict=True):
            found.setdefault(rung, set()).add(round(reward, 6))
        return found

    assert rewards_by_rung() == {0: {1 - 0.5 * 0.3}, 1: {-0.5 * 0.8}}
    buffer.alpha, buffer.beta = 2.0, 2.0
    assert rewards_by_rung() == {0: {2 - 2 * 0.3}, 1: {-2 * 0.8}}


def test_the_ring_keeps_the_newest_buffer_size_records(make_buffer):
    buffer = make_buffer(buffer_size=4)
    for i in range(6):
        step(buffer, rung=i % RUNGS, hit=True, sent=10 * (i + 1))

    assert (buffer.size(), buffer.full, buffer.pos) == (4, True, 2)
    sizes = {round(float(r), 4) for r in buffer.sample(200).rewards[:, 0]}  # alpha = beta = 1: 1 - sent / 100
    assert sizes == {round(1 - s / 100, 4) for s in (30, 40, 50, 60)}


def test_records_added_at_once_are_all_kept_up_to_buffer_size(make_buffer):
    """More at once than a producer's default backlog (10,000): none is dropped on the way to the stream."""
    records = [Transition(np.full(DIM, i, np.float32), i % RUNGS, True, 0.5, "replayed", float(i))
               for i in range(12_000)]
    buffer = make_buffer(buffer_size=20_000)
    buffer.add_transitions(records)
    assert buffer.size() == 12_000


def test_a_pickled_buffer_keeps_its_records_and_reconnects(make_buffer):
    buffer = make_buffer(alpha=1.0, beta=0.25)
    for rung in range(RUNGS):
        step(buffer, rung=rung, hit=rung > 0, sent=40)
    before = buffer.sample(32)

    restored = pickle.loads(pickle.dumps(buffer))

    assert restored.size() == 3 and (restored.alpha, restored.beta) == (1.0, 0.25)
    assert set(restored.sample(64).actions[:, 0].tolist()) == set(before.actions[:, 0].tolist()) == {0, 1, 2}
    step(restored, rung=1, hit=True, sent=100)
    assert restored.size() == 4


def test_a_new_buffer_on_the_same_stream_sees_what_the_first_stored(prefix):
    first = StreamReplayBuffer(100, OBSERVATIONS, ACTIONS, device="cpu", redis_url=REDIS_URL, prefix=prefix)
    added = [step(first, rung=i % RUNGS, hit=True, sent=10 + i, observation=np.full(DIM, i / 10, np.float32))
             for i in range(5)]
    first.close()

    restarted = StreamReplayBuffer(100, OBSERVATIONS, ACTIONS, device="cpu", redis_url=REDIS_URL, prefix=prefix)
    assert restarted.size() == 5
    seen = {tuple(row) for row in restarted.sample(200).observations.numpy()}
    assert seen == {tuple(obs) for obs in added}

    # another producer (the daemon, say) adds to the same stream: the buffer samples it too
    TransitionBuffer(RedisStore(REDIS_URL, prefix)).add(
        Transition(np.ones(DIM, np.float32), 2, True, 0.5, "registry-version", 1.7e9, 100, 50))
    assert restarted.size() == 6
    restarted.close()


def test_records_of_another_observation_size_are_skipped_not_sampled(prefix):
    TransitionBuffer(RedisStore(REDIS_URL, prefix)).add_many([
        Transition(np.zeros(DIM + 1, np.float32), 0, True, 0.5, "another-featurizer", 1.7e9),
        Transition(np.zeros(DIM, np.float32), RUNGS, True, 0.5, "another-ladder", 1.7e9),
        Transition(np.zeros(DIM, np.float32), 1, True, 0.5, "this-agent", 1.7e9),
    ])
    buffer = StreamReplayBuffer(100, OBSERVATIONS, ACTIONS, device="cpu", redis_url=REDIS_URL, prefix=prefix)

    assert buffer.size() == 1 and buffer.skipped == 2
    assert set(buffer.sample(16).actions[:, 0].tolist()) == {1}
    buffer.close()


def test_a_step_without_the_hit_and_sizes_is_refused_by_name(make_buffer):
    buffer = make_buffer()
    obs = np.zeros((1, DIM), np.float32)
    with pytest.raises(StreamBufferError, match="lacks 'reference_bytes'"):
        buffer.add(obs, obs, np.array([[1]]), np.array([0.5]), np.array([True]), [{"hit": True, "bytes": 10}])
    with pytest.raises(StreamBufferError, match="lacks 'hit', 'bytes'"):
        buffer.add(obs, obs, np.array([[1]]), np.array([0.5]), np.array([True]), [{"reference_bytes": 10}])
    assert buffer.size() == 0
    with pytest.raises(StreamBufferError, match="nothing to sample"):
        buffer.sample(4)


def test_without_redis_each_buffer_has_a_private_store_whatever_the_environment_says(monkeypatch):
    monkeypatch.setenv("ADACOMPRESS_REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    one, other = (StreamReplayBuffer(10, OBSERVATIONS, ACTIONS, device="cpu") for _ in range(2))
    step(one, rung=1, hit=True, sent=20)

    assert (one.size(), other.size()) == (1, 0)
    assert one.sample(4).rewards[:, 0].tolist() == pytest.approx([0.8] * 4)


def test_a_dqn_built_with_the_buffer_collects_and_trains_from_the_stream(prefix, tmp_path):
    config = AgentConfig(net_arch=(16,), head="mlp", learning_rate=1e-2, batch_size=32, buffer_size=1000,
                         learning_starts=16, gradient_steps=1, seed=0)
    kwargs = {"redis_url": REDIS_URL, "prefix": prefix, "alpha": 1.0, "beta": 1.0}
    model = build_dqn(OneStepEnv(), config, replay_buffer_class=StreamReplayBuffer, replay_buffer_kwargs=kwargs)
    buffer = model.replay_buffer
    assert isinstance(buffer, StreamReplayBuffer)

    model.learn(total_timesteps=64)  # SB3's own rollouts add (infos from the env) and train by sampling
    stream = RedisStore(REDIS_URL, prefix)
    assert buffer.size() == 64 and stream.length(stream.keys.transitions) == 64
    stream.close()

    # Rung 2's reward is 1 - 300 / 300 = 0 whatever the observation: trained on it alone, Q goes there.
    buffer.reset()  # the mirror forgets the rollouts; the stream keeps them
    obs = np.random.default_rng(1).random((8, DIM), dtype=np.float32)
    for row in obs:
        step(buffer, rung=2, hit=True, sent=300, reference=300, observation=row)
    assert buffer.size() == 8

    def error() -> float:
        with torch.no_grad():
            return float(model.q_net(torch.as_tensor(obs))[:, 2].abs().mean())

    before = error()
    model.train(gradient_steps=100, batch_size=8)
    assert error() < min(0.05, before / 2)

    path = tmp_path / "replay.pkl"
    model.save_replay_buffer(path)
    model.load_replay_buffer(path)
    assert isinstance(model.replay_buffer, StreamReplayBuffer) and model.replay_buffer.size() == 8
    model.train(gradient_steps=2, batch_size=8)
    model.replay_buffer.close()
