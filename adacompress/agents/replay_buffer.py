"""Transitions the service records and the learner replays: a capped Redis Stream, or a deque in process.

A `Transition` is a record (observation, rung, hit, size ratio, ...), not a reward, so it stays valid
when alpha or beta change; `replay_arrays` turns records into SB3's replay-buffer arrays for a given
scoring. On the wire a transition is a fixed struct header, the policy version in UTF-8 and the
observation as raw little-endian float32: compact, checked on read (a truncated or foreign entry
fails to parse instead of training on garbage), and never unpickled.

Every request worker `add`s; an add never raises. While the store is down, transitions wait in a
bounded in-memory backlog (beyond it the oldest are dropped and counted in `dropped`: under drift
the newest say most about today's inputs) and go out in order when the store answers again, on the
next add or on `flush()`. One learner `read`s what is new after a cursor saved in the store, so a
restarted learner resumes; it keeps the last `capacity` transitions and `sample`s batches from them.
"""

from __future__ import annotations

import logging
import math
import struct
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from adacompress.errors import AdaCompressError
from adacompress.outage import Outage
from adacompress.service.events import log_event
from adacompress.service.store import STREAM_START, Store, StoreError

if TYPE_CHECKING:
    from adacompress.agents.policies import Decision

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 100_000
"""Transitions kept in the stream and in the learner's memory (the agent's default replay size)."""
DEFAULT_BACKLOG_LIMIT = 10_000
"""Transitions held in a producer's memory while the store is down (about 2.5 MB with the 31-d probe)."""

_MAGIC = b"ACTR"
_FORMAT = 1
# magic, format, rung, hit, size_ratio, time, reference_bytes (-1: unknown), bytes_sent (-1: unknown),
# length of the policy version in bytes, length of the observation in float32s
_HEADER = struct.Struct("<4sBI?ddqqHI")


class TransitionError(AdaCompressError, ValueError):
    """A transition that cannot be stored or was not stored by us (truncated, foreign, inconsistent)."""

    code = "bad_transition"


@dataclass(frozen=True, eq=False)
class Transition:
    """What happened to one upload at one rung: the learner's raw material, independent of alpha and beta."""

    observation: np.ndarray
    """What the policy saw, float32 of shape (dim,); stored read-only."""
    rung: int
    """Index of the action in the serving policy's ladder."""
    hit: bool
    """Whether the answer for this rung kept the reference's answer."""
    size_ratio: float
    """Bytes sent / reference bytes."""
    policy_version: str
    """The version that decided (a registry version, `fixed:15`, ...)."""
    time: float
    """Unix time of the upload."""
    reference_bytes: int | None = None
    bytes_sent: int | None = None

    def __post_init__(self) -> None:
        observation = np.array(self.observation, dtype=np.float32)
        if observation.ndim != 1:
            raise TransitionError(f"observation has shape {observation.shape}; a transition needs a 1-d vector")
        observation.flags.writeable = False
        object.__setattr__(self, "observation", observation)
        if self.rung < 0:
            raise TransitionError(f"rung {self.rung} is negative; use the action's index in the ladder")
        if not (math.isfinite(self.size_ratio) and self.size_ratio >= 0):
            raise TransitionError(f"size ratio {self.size_ratio} must be a finite number >= 0")
        if len(self.policy_version.encode()) > 0xFFFF:
            raise TransitionError("policy version is longer than 65535 bytes")

    @classmethod
    def from_decision(cls, decision: Decision, hit: bool, reference_bytes: int | None = None,
                      at: float | None = None) -> Transition:
        """The transition of a served decision; `reference_bytes` when the reference was really encoded."""
        if decision.observation is None:
            raise TransitionError(f"policy {decision.policy_version} saw no observation; only learned "
                                  "policies' decisions make transitions")
        reference = reference_bytes if reference_bytes is not None else decision.reference_bytes
        if reference <= 0:
            raise TransitionError(f"reference size {reference} bytes must be positive")
        return cls(decision.observation, decision.rung, hit, decision.bytes / reference, decision.policy_version,
                   time.time() if at is None else at, reference, decision.bytes)

    def to_bytes(self) -> bytes:
        version = self.policy_version.encode()
        header = _HEADER.pack(_MAGIC, _FORMAT, self.rung, self.hit, self.size_ratio, self.time,
                              -1 if self.reference_bytes is None else self.reference_bytes,
                              -1 if self.bytes_sent is None else self.bytes_sent, len(version), self.observation.size)
        return header + version + self.observation.astype("<f4", copy=False).tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Transition:
        """Parse what `to_bytes` wrote; anything else raises `TransitionError`."""
        if len(data) < _HEADER.size:
            raise TransitionError(f"a transition of {len(data)} bytes is shorter than its {_HEADER.size}-byte "
                                  "header (truncated, or not written by adacompress)")
        magic, fmt, rung, hit, ratio, at, reference, sent, version_len, dim = _HEADER.unpack_from(data)
        if magic != _MAGIC or fmt != _FORMAT:
            raise TransitionError(f"not an adacompress transition (magic {magic!r}, format {fmt})")
        expected = _HEADER.size + version_len + 4 * dim
        if len(data) != expected:
            raise TransitionError(f"transition is {len(data)} bytes; its header says {expected} (torn or altered)")
        try:
            version = data[_HEADER.size:_HEADER.size + version_len].decode()
        except UnicodeDecodeError as exc:
            raise TransitionError(f"transition's policy version is not UTF-8 ({exc})") from None
        observation = np.frombuffer(data, dtype="<f4", count=dim, offset=_HEADER.size + version_len)
        return cls(observation, rung, hit, ratio, version, at, None if reference < 0 else reference,
                   None if sent < 0 else sent)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Transition):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())


@dataclass(frozen=True)
class ReplayArrays:
    """Transitions in SB3 `ReplayBuffer` layout: (transitions, n_envs = 1, ...), ready to copy into its arrays."""

    observations: np.ndarray
    """(n, 1, dim) float32."""
    next_observations: np.ndarray
    """The observations again: one image per episode, nothing follows (gamma is 0)."""
    actions: np.ndarray
    """(n, 1, 1) int64 rungs."""
    rewards: np.ndarray
    """(n, 1) float32: alpha * hit - beta * size_ratio."""
    dones: np.ndarray
    """(n, 1) float32 ones: every episode ends after its one step."""
    timeouts: np.ndarray
    """(n, 1) float32 zeros: no episode is cut short."""


def replay_arrays(transitions: Sequence[Transition], alpha: float = 1.0, beta: float = 1.0) -> ReplayArrays:
    """Records to SB3 arrays under scoring weights `alpha`, `beta` (the reward of `adacompress.scoring`)."""
    if not transitions:
        raise TransitionError("no transitions to convert; read() some first")
    dims = {t.observation.size for t in transitions}
    if len(dims) > 1:
        versions = sorted({t.policy_version for t in transitions})
        raise TransitionError(f"transitions mix observation sizes {sorted(dims)} (policy versions {versions}); "
                              "train on one featurizer's transitions at a time")
    observations = np.stack([t.observation for t in transitions])[:, None, :]
    hits = np.fromiter((t.hit for t in transitions), dtype=np.float64, count=len(transitions))
    ratios = np.fromiter((t.size_ratio for t in transitions), dtype=np.float64, count=len(transitions))
    n = len(transitions)
    return ReplayArrays(
        observations=observations, next_observations=observations.copy(),
        actions=np.fromiter((t.rung for t in transitions), dtype=np.int64, count=n).reshape(n, 1, 1),
        rewards=(alpha * hits - beta * ratios).astype(np.float32).reshape(n, 1),
        dones=np.ones((n, 1), np.float32), timeouts=np.zeros((n, 1), np.float32),
    )


class TransitionBuffer:
    """Producers `add` to the store's capped transitions stream; one learner `read`s, remembers and `sample`s."""

    def __init__(self, store: Store, capacity: int = DEFAULT_CAPACITY, backlog_limit: int = DEFAULT_BACKLOG_LIMIT,
                 reader: str = "learner", retry_s: float = 1.0, chunk: int = 500) -> None:
        if capacity <= 0 or backlog_limit <= 0 or chunk <= 0:
            raise TransitionError(f"capacity ({capacity}), backlog_limit ({backlog_limit}) and chunk ({chunk}) "
                                  "must be positive")
        self.store = store
        self.stream = store.keys.transitions
        self.capacity, self.backlog_limit, self.chunk, self.reader = capacity, backlog_limit, chunk, reader
        self.added = 0
        """Transitions this producer stored."""
        self.dropped = 0
        """Transitions this producer lost because the backlog was full while the store was down."""
        self.skipped = 0
        """Stream entries this reader could not parse (logged one by one)."""
        self._backlog: deque[bytes] = deque()
        self._in_flight = 0
        self._queue_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._outage = Outage(f"transitions stream in {store.description}", retry_s,
                              "transitions wait in memory (bounded; overflow is counted as dropped)", log)
        self._cursor: str | None = None
        self._memory: list[Transition] = []
        self._next = 0

    # producers

    def add(self, transition: Transition) -> None:
        """Store `transition`, or keep it for later if the store is down; never raises."""
        self.add_many([transition])

    def add_many(self, transitions: Sequence[Transition]) -> None:
        """`add` for several at once (one round trip): e.g. every rung labelled by one estimate."""
        payloads = [t.to_bytes() for t in transitions]
        with self._queue_lock:
            self._backlog.extend(payloads)
            self._trim()
        self._drain(force=False)

    def flush(self) -> bool:
        """Send the backlog now, whatever the outage back-off says; True when nothing is left waiting."""
        self._drain(force=True)
        return self.pending == 0

    @property
    def pending(self) -> int:
        """Transitions waiting in this process for the store."""
        with self._queue_lock:
            return len(self._backlog) + self._in_flight

    def _trim(self) -> None:
        """Drop the oldest waiting transitions beyond the limit (caller holds the queue lock)."""
        excess = min(len(self._backlog) + self._in_flight - self.backlog_limit, len(self._backlog))
        for _ in range(max(0, excess)):
            self._backlog.popleft()
        self.dropped += max(0, excess)

    def _drain(self, force: bool) -> None:
        while force or self._outage.up():
            # A thread that finds another sending leaves its transitions to it: the sender looks again below.
            if not self._send_lock.acquire(blocking=force):
                return
            try:
                sent = self._send()
            finally:
                self._send_lock.release()
            with self._queue_lock:
                if not sent or not self._backlog:
                    return
            force = False

    def _send(self) -> bool:
        """Send the backlog in order, a chunk per round trip; False if the store failed (the chunk goes back)."""
        while True:
            with self._queue_lock:
                chunk = [self._backlog.popleft() for _ in range(min(self.chunk, len(self._backlog)))]
                self._in_flight = len(chunk)
            if not chunk:
                return True
            try:
                self.store.append(self.stream, chunk, self.capacity)
            except StoreError as exc:
                with self._queue_lock:
                    self._backlog.extendleft(reversed(chunk))
                    self._in_flight = 0
                    self._trim()
                self._outage.failed(exc)
                return False
            with self._queue_lock:
                self._in_flight = 0
                self.added += len(chunk)
            self._outage.recovered(f"{self.dropped} transitions dropped while it was away")

    # the learner

    def read(self, count: int = 1000) -> list[Transition]:
        """Up to `count` transitions added after this reader's cursor, oldest first; they join the memory
        `sample` draws from, and the cursor is saved in the store. Raises `StoreUnavailable` when it is down."""
        cursor_key = self.store.keys.reader_cursor(self.reader)
        if self._cursor is None:
            saved = self.store.get(cursor_key)
            self._cursor = saved.decode() if saved else STREAM_START
        entries = self.store.read(self.stream, self._cursor, count)
        if not entries:
            return []
        transitions = []
        for entry_id, payload in entries:
            try:
                transitions.append(Transition.from_bytes(payload))
            except TransitionError as exc:
                self.skipped += 1
                log_event(log, logging.WARNING, "transition_skipped", stream=self.stream, id=entry_id, error=str(exc))
        self._cursor = entries[-1][0]
        self.store.set(cursor_key, self._cursor.encode())
        for transition in transitions:
            self._remember(transition)
        return transitions

    @property
    def cursor(self) -> str | None:
        """The last stream id this reader consumed (None before its first `read`)."""
        return self._cursor

    def _remember(self, transition: Transition) -> None:
        if len(self._memory) < self.capacity:
            self._memory.append(transition)
        else:
            self._memory[self._next] = transition
        self._next = (self._next + 1) % self.capacity

    def __len__(self) -> int:
        """Transitions in the learner's memory."""
        return len(self._memory)

    def sample(self, batch_size: int, rng: np.random.Generator) -> list[Transition]:
        """`batch_size` transitions drawn uniformly, with replacement, from the memory (as SB3 samples)."""
        if not self._memory:
            raise TransitionError("the replay memory is empty; read() transitions before sampling")
        return [self._memory[i] for i in rng.integers(len(self._memory), size=batch_size)]
