"""A stable-baselines3 `ReplayBuffer` whose storage is the transitions stream: Redis, or an in-process store.

The stream (`Keys.transitions`, capped with `XADD MAXLEN ~ buffer_size`) is the ring: many producers
append, one learner samples, and the data outlives the learner's process. `add` turns each env step into
a `Transition` and appends it through a `TransitionBuffer`, so an add never fails while Redis is down (it
waits in a backlog of at most `buffer_size`, all the ring would keep anyway). `add`, `size()` and `sample`
first read what the stream gained into a local mirror of its newest `buffer_size` records, so `pos`,
`full` and `size()` mean what they mean in SB3, and `sample` draws from the mirror as SB3 draws from its
arrays. Records carry the hit and the size ratio, not a reward: rewards are `alpha * hit - beta *
size_ratio`, computed when sampled, so new weights re-score everything stored.

A new buffer on the same URL and prefix reads the stream from its start, so its contents survive a restart
of the trainer. The store is opened on first use from `redis_url` (None: an embedded store private to this
buffer) and pickling leaves it out, so `model.save_replay_buffer` works; the mirror is pickled as records,
and an unpickled buffer reconnects on first use.

Episodes are one step (gamma is 0, as everywhere in adacompress): next observations are the observations
and every done is 1.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from adacompress.agents.replay_buffer import Transition, TransitionBuffer, TransitionError, replay_arrays
from adacompress.config import DEFAULT_REDIS_PREFIX
from adacompress.outage import Outage
from adacompress.service.events import log_event
from adacompress.service.store import STREAM_START, EmbeddedStore, Store, StoreError, open_store

log = logging.getLogger(__name__)

INFO_KEYS = ("hit", "bytes", "reference_bytes")
"""What each step's info must carry (`JpegQualityEnv.step` reports them): the transition's hit and sizes."""


class StreamBufferError(TransitionError):
    """A step, a space or a request the stream replay buffer cannot serve."""

    code = "stream_buffer_error"


class StreamReplayBuffer(ReplayBuffer):
    """SB3's replay buffer over the transitions stream; the same `add`/`sample` contract, no preallocated arrays.

    Besides SB3's arguments: `redis_url` (None: an embedded store private to this buffer), key `prefix`
    (default `ADACOMPRESS_REDIS_PREFIX` for Redis), the scoring weights `alpha` and `beta` applied when
    sampling, and `policy_version`, the tag of the transitions `add` records. `buffer_size` counts
    transitions, not steps of `n_envs` transitions, and caps the stream on every add: on a stream others
    write too, give it their cap (the service's is 100,000). `optimize_memory_usage` is ignored: nothing is
    stored twice.
    """

    def __init__(self, buffer_size: int, observation_space: spaces.Space, action_space: spaces.Space,
                 device: torch.device | str = "auto", n_envs: int = 1, optimize_memory_usage: bool = False,
                 handle_timeout_termination: bool = True, *, redis_url: str | None = None,
                 prefix: str | None = None, alpha: float = 1.0, beta: float = 1.0, policy_version: str = "sb3",
                 read_chunk: int = 1000, retry_s: float = 1.0) -> None:
        if not (isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 1
                and isinstance(action_space, spaces.Discrete)):
            raise StreamBufferError(f"spaces {observation_space} and {action_space}: a transition holds a 1-d Box "
                                    "observation and a Discrete action (a rung)")
        if buffer_size <= 0 or read_chunk <= 0:
            raise StreamBufferError(f"buffer_size ({buffer_size}) and read_chunk ({read_chunk}) must be positive")
        # BaseBuffer's constructor, not ReplayBuffer's: that one allocates arrays for every one of buffer_size slots.
        BaseBuffer.__init__(self, buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.optimize_memory_usage = False
        self.handle_timeout_termination = handle_timeout_termination
        self.redis_url, self.prefix = redis_url, prefix
        self.alpha, self.beta = alpha, beta
        self.policy_version, self.read_chunk, self.retry_s = policy_version, read_chunk, retry_s
        self.skipped = 0
        """Stream records this buffer left out: unparsable, another observation size, a rung outside the actions."""
        self._memory: list[Transition] = []
        self._cursor = STREAM_START
        self._store: Store | None = None
        self._producer: TransitionBuffer | None = None
        self._outage: Outage | None = None

    # SB3's contract

    def add(self, obs: np.ndarray, next_obs: np.ndarray, action: np.ndarray, reward: np.ndarray,
            done: np.ndarray, infos: list[dict[str, Any]]) -> None:
        """Record each env's step; `reward` and `next_obs` are not kept (rewards are recomputed when sampled)."""
        observations = np.asarray(obs, dtype=np.float32).reshape(self.n_envs, *self.obs_shape)
        rungs = np.asarray(action).reshape(self.n_envs)
        dones = np.asarray(done).reshape(self.n_envs)
        at = time.time()
        self.add_transitions([self._transition(observations[i], int(rungs[i]), bool(dones[i]), infos[i], at)
                              for i in range(self.n_envs)])

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ReplayBufferSamples:
        """`batch_size` records drawn uniformly with replacement from the stream's newest `buffer_size`."""
        self._read_new()
        if not self._memory:
            raise StreamBufferError(f"nothing to sample: the transitions stream in {self._connection()[0].description} "
                                    "is empty (or was unreachable since this buffer started); add transitions first")
        return super().sample(batch_size, env)

    def size(self) -> int:
        """Records in the mirror (at most `buffer_size`) once what the stream gained is read: other producers'
        adds count too."""
        self._read_new()
        return super().size()

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> ReplayBufferSamples:
        arrays = replay_arrays([self._memory[i] for i in batch_inds], self.alpha, self.beta)
        data = (self._normalize_obs(arrays.observations[:, 0], env), arrays.actions[:, 0],
                self._normalize_obs(arrays.next_observations[:, 0], env), arrays.dones * (1 - arrays.timeouts),
                self._normalize_reward(arrays.rewards, env))
        return ReplayBufferSamples(*map(self.to_torch, data))

    def reset(self) -> None:
        """Forget the mirror (the stream keeps everything); later reads bring only what is added after."""
        super().reset()
        self._memory.clear()

    # beyond SB3

    def add_transitions(self, transitions: Sequence[Transition]) -> None:
        """Append records made elsewhere (the learner's training split, a replayed log) as `add` does."""
        self._connection()[1].add_many(transitions)
        self._read_new()

    def close(self) -> None:
        """Release the store's connections; the next use reconnects."""
        if self._store is not None:
            self._store.close()
        self._store = self._producer = self._outage = None

    def _transition(self, observation: np.ndarray, rung: int, done: bool, info: dict[str, Any],
                    at: float) -> Transition:
        missing = [key for key in INFO_KEYS if key not in info]
        if missing:
            raise StreamBufferError(f"the step's info lacks {', '.join(map(repr, missing))}: a transition records "
                                    f"{', '.join(INFO_KEYS)} (as JpegQualityEnv's step info has them)")
        if not done:
            raise StreamBufferError("an episode went on after its step; this buffer stores one-step episodes "
                                    "(gamma 0): every step must end its episode")
        sent, reference = int(info["bytes"]), int(info["reference_bytes"])
        if reference <= 0:
            raise StreamBufferError(f"the step's info says reference_bytes = {reference}; it must be positive")
        return Transition(observation, rung, bool(info["hit"]), sent / reference, self.policy_version, at,
                          reference, sent)

    # the stream

    def _connection(self) -> tuple[Store, TransitionBuffer, Outage]:
        if self._store is None or self._producer is None or self._outage is None:
            store = (EmbeddedStore(self.prefix or DEFAULT_REDIS_PREFIX) if self.redis_url is None
                     else open_store(self.redis_url, self.prefix))
            self._store = store
            self._producer = TransitionBuffer(store, capacity=self.buffer_size, backlog_limit=self.buffer_size,
                                              retry_s=self.retry_s)
            self._outage = Outage(f"replay buffer's transitions stream in {store.description}", self.retry_s,
                                  "sampling goes on from what was read before", log)
        return self._store, self._producer, self._outage

    def _read_new(self) -> None:
        """Mirror what the stream gained since the last read; while the store is down, keep the mirror."""
        store, producer, outage = self._connection()
        if not outage.up():
            return
        unusable: dict[str, int] = {}
        try:
            if producer.pending:
                producer.flush()
            while entries := store.read(store.keys.transitions, self._cursor, self.read_chunk):
                for _, payload in entries:
                    reason = self._remember(payload)
                    if reason:
                        unusable[reason] = unusable.get(reason, 0) + 1
                self._cursor = entries[-1][0]
        except StoreError as exc:
            outage.failed(exc)
        else:
            outage.recovered()
        finally:
            if unusable:
                self.skipped += sum(unusable.values())
                log_event(log, logging.WARNING, "replay_records_skipped", stream=store.keys.transitions, **unusable)

    def _remember(self, payload: bytes) -> str | None:
        """Put one stream record in the mirror, SB3's ring order; why it was left out, if it was."""
        try:
            transition = Transition.from_bytes(payload)
        except TransitionError:
            return "unparsable"
        if transition.observation.shape != self.obs_shape:
            return "other_observation_size"
        if transition.rung >= self.action_space.n:  # type: ignore[attr-defined]
            return "rung_outside_actions"
        if self.full:
            self._memory[self.pos] = transition
        else:
            self._memory.append(transition)
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full, self.pos = True, 0
        return None

    # pickling: everything but the connection

    def __getstate__(self) -> dict[str, Any]:
        if self._producer is not None and self._producer.pending:
            log_event(log, logging.WARNING, "replay_backlog_not_saved", pending=self._producer.pending,
                      note="transitions still waiting for the store are not in the pickle")
        state = {**self.__dict__, "_store": None, "_producer": None, "_outage": None,
                 "_memory": [t.to_bytes() for t in self._memory]}
        if self.redis_url is None:  # an unpickled buffer opens a new, empty embedded stream
            state["_cursor"] = STREAM_START
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _memory=[Transition.from_bytes(data) for data in state["_memory"]])
