"""The per-request state machine: serve each upload compressed, and now and then estimate how well that works.

Every request is decided by the policy, with the rule set's accuracy dial. It is an *inference* (only
`decision.data` is uploaded and its answer served) or an *estimate*: the reference is uploaded too, at the
same time and with the response cache bypassed, the compressed answer is scored against it, transitions go
to the buffer, and the caller gets the reference's answer, so an estimate never costs the caller accuracy.
The rule set (`adacompress.service.rules`) decides which requests are estimates and reads the scores.

`handle` may be called from any number of threads: the state is updated under one lock, and the policy and
the backend run outside it.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from PIL import Image

from adacompress.agents.policies import Decision, LearnedPolicy, Policy
from adacompress.agents.replay_buffer import Transition, TransitionBuffer
from adacompress.cloud_backends.base import BackendError, Recognition, VisionBackend
from adacompress.outage import Outage
from adacompress.scoring import Scoring
from adacompress.service.events import log_event
from adacompress.service.rules import DaemonState, Rules, TargetRules
from adacompress.service.store import StoreError
from adacompress.upload import Upload

log = logging.getLogger(__name__)

RequestMode = Literal["inference", "estimate"]
SHARE_INTERVAL_S = 1.0
"""Seconds between writes of this replica's state to the store."""
REPLICA_STATE_TTL_S = 30.0
"""Seconds a replica's state outlives its last write: a stopped replica's state goes away by itself."""
CUE_FIELDS = ("mode", "retrain_requested", "p_est")
"""Fields of the shared `daemon:state` hash, written at each change of mode: the learner's cue."""


@dataclass(frozen=True)
class Served:
    """What one request got: the answer returned to the caller, and how it was obtained."""

    recognition: Recognition
    """The answer the caller gets: the reference's in a scored estimate, else the compressed upload's."""
    decision: Decision
    """The policy's choice (action, bytes sent in `decision.data`)."""
    reference_bytes: int
    """Real size of the reference upload in an estimate; the policy's estimate of it in inference."""
    mode: RequestMode
    estimated: bool
    """Whether both answers arrived and were compared (False for inference and for failed estimates)."""
    hit: bool | None
    """Whether the compressed answer kept the reference's (None when not estimated)."""
    p_est: float
    """The chance this request had of being an estimate."""
    policy_version: str


class Daemon:
    """Serves uploads through `policy` and `backend`, estimating when `rules` say so.

    `max_concurrent_estimates` bounds the threads that upload references beside the compressed upload.
    """

    def __init__(self, policy: Policy, backend: VisionBackend, scoring: Scoring, buffer: TransitionBuffer | None,
                 rules: Rules | None = None, seed: int = 0, max_concurrent_estimates: int = 8,
                 replica: str | None = None) -> None:
        self.policy = policy
        self.backend = backend
        self.scoring = scoring
        self.buffer = buffer
        self.rules: Rules = rules if rules is not None else TargetRules()
        self._state = self.rules.initial_state(policy.size_weight)
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._references = ThreadPoolExecutor(max_concurrent_estimates, thread_name_prefix="adacompress-reference")
        self.replica = replica or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        """This process's name in the store (`daemon:replica:{replica}`)."""
        self._next_share = 0.0
        self._share_outage = (Outage(f"daemon state in {buffer.store.description}", 30.0,
                                     "the state is not shared", log) if buffer is not None else None)

    @property
    def state(self) -> DaemonState:
        """A copy of the state, consistent at one instant."""
        with self._lock:
            return copy.deepcopy(self._state)

    def state_json(self) -> dict[str, Any]:
        """The state as `DaemonState.to_json` gives it, read under the lock without copying the window."""
        with self._lock:
            return self._state.to_json()

    def set_policy(self, policy: Policy) -> None:
        """Serve `policy` from the next request on (a `PolicyWatcher`'s `on_change`); the dial restarts from its own."""
        with self._lock:
            self.policy = policy
            self.rules.on_policy_change(self._state, policy.size_weight)

    def close(self) -> None:
        self._references.shutdown(wait=True)

    def handle(self, upload: bytes | Image.Image | Upload) -> Served:
        """Serve one upload; a `BadImage` raises before anything is sent."""
        policy, size_weight, min_rung = self.snapshot()
        image = policy.upload_of(upload)
        decision = policy.decide(image, size_weight, min_rung)
        return self.serve(policy, decision, lambda: image)

    def snapshot(self) -> tuple[Policy, float | None, int]:
        """The policy serving now, the dial and the quality floor to decide with: what a decision made elsewhere
        needs."""
        with self._lock:
            return self.policy, self._state.size_weight, self._state.min_rung

    def serve(self, policy: Policy, decision: Decision, upload: Callable[[], Upload]) -> Served:
        """Serve a decision `policy` made (here, or in a worker process); `upload()` gives the upload, called only if
        the request becomes an estimate (to encode the reference, and to observe it if the decision exited early)."""
        with self._lock:
            state = self._state
            p_est = self.rules.estimate_probability(state, decision.observation, decision.hit_probability)
            estimate = float(self._rng.random()) < p_est
            state.note_request(estimate)
            snapshot = self._due_snapshot()
        if snapshot is not None:
            self._share(snapshot, cue=False)
        if not estimate:
            answer = self.backend.recognize(decision.data)
            return Served(answer, decision, decision.reference_bytes, "inference", False, None, p_est,
                          decision.policy_version)
        return self._estimate(policy, decision, upload(), p_est)

    def _due_snapshot(self) -> dict[str, Any] | None:
        """The state to share if a share is due (called under the lock)."""
        now = time.monotonic()
        if self.buffer is None or now < self._next_share:
            return None
        self._next_share = now + SHARE_INTERVAL_S
        return self._state.to_json()

    def _share(self, snapshot: dict[str, Any], cue: bool) -> None:
        """Put the state where operators read it (`daemon:replica:{replica}`, once a second) and, with `cue`
        (a change of mode), the mode and retrain flag where the learner reads them (`daemon:state`).

        A store that is down is logged once and skipped for a while, never raised into the request.
        """
        if self.buffer is None or self._share_outage is None or not self._share_outage.up():
            return
        store = self.buffer.store
        fields = {name: _field(value) for name, value in {**snapshot, "replica": self.replica}.items()}
        try:
            store.hset_many(store.keys.daemon_replica(self.replica), fields, ttl_s=REPLICA_STATE_TTL_S)
            if cue:
                store.hset_many(store.keys.daemon_state, {name: fields[name] for name in (*CUE_FIELDS, "replica")})
        except StoreError as exc:
            self._share_outage.failed(exc)
            return
        self._share_outage.recovered()

    def _estimate(self, policy: Policy, decision: Decision, image: Upload, p_est: float) -> Served:
        reference_data = image.encoded(policy.reference).data
        pending: Future[Recognition] = self._references.submit(self.backend.recognize, reference_data,
                                                                use_cache=False)
        compressed = reference = None
        failure: BackendError | None = None
        try:
            compressed = self.backend.recognize(decision.data)
        except BackendError as exc:
            failure = exc
        try:
            reference = pending.result()
        except BackendError as exc:
            if compressed is None:
                raise
            failure = exc
        if compressed is None or reference is None:
            # Half an estimate still serves the caller (the reference's answer if it came); it is not scored.
            assert failure is not None
            with self._lock:
                self._state.estimate_failures += 1
            log_event(log, logging.WARNING, "estimate_failed",
                      upload="reference" if reference is None else "compressed", error=str(failure),
                      code=failure.code, policy_version=decision.policy_version)
            answer = reference if reference is not None else compressed
            assert answer is not None
            return Served(answer, decision, len(reference_data), "estimate", False, None, p_est,
                          decision.policy_version)
        hit = self.scoring.hit(reference, compressed)
        reward = self.scoring.reward(hit, decision.bytes, len(reference_data))
        if self.buffer is not None and decision.exited_early:  # probed whole only when a buffer will learn from it
            decision = replace(decision, observation=policy.observe(image))
        transitions = self._transitions(policy, decision, hit, len(reference_data))
        with self._lock:
            change = self.rules.on_estimate(self._state, hit, reward, p_est)
            self._state.transitions += len(transitions)
            snapshot = self._state.to_json() if change else None
        if self.buffer is not None and transitions:
            self.buffer.add_many(transitions)
        if change:
            log_event(log, logging.WARNING if change == "retrain_requested" else logging.INFO, change,
                      policy_version=decision.policy_version, **(snapshot or {}))
            self._share(snapshot or {}, cue=True)
        return Served(reference, decision, len(reference_data), "estimate", True, hit, p_est, decision.policy_version)

    def _transitions(self, policy: Policy, decision: Decision, hit: bool, reference_bytes: int) -> list[Transition]:
        """The uploaded rung's transition and, under monotone labels, those of the rungs its answer implies.

        A hit implies hits at the rungs of no lower quality and size, a miss misses at those of no higher
        (`Ladder.implied_by`); those records carry the
        observation's size estimate and `bytes_sent=None` (never uploaded), so validation can leave them out.
        """
        if self.buffer is None or decision.observation is None:
            return []
        uploaded = Transition.from_decision(decision, hit, reference_bytes)
        ratios = policy.size_ratios(decision.observation) if isinstance(policy, LearnedPolicy) else None
        if not self.rules.monotone_labels or ratios is None:
            return [uploaded]
        implied = policy.ladder.implied_by(decision.rung, hit)
        return [uploaded] + [Transition(decision.observation, rung, hit, float(ratios[rung]), decision.policy_version,
                                        uploaded.time, reference_bytes, None) for rung in implied]


def _field(value: Any) -> bytes:
    """A state field as stored: booleans as 1/0 (what the learner reads), numbers as text, the rest as JSON."""
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, int | float | str):
        return str(value).encode()
    return json.dumps(value).encode()
