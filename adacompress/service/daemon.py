"""The per-request state machine: serve each upload compressed, and now and then estimate how well that works.

Every request is decided by the policy. It is an *inference* (only `decision.data` is uploaded and its
answer served) or, with probability p_est, an *estimate*: the reference is uploaded too, with the response
cache bypassed, the compressed answer is scored against it, a `Transition` goes to the buffer, and the
caller gets the reference's answer, so an estimate never costs the caller accuracy. A rule set reads the
estimates and moves p_est and the mode (inference or retrain); `PaperRules` are AdaCompress's.

`handle` may be called from any number of threads: the state is updated under one lock, and the policy and
the backend run outside it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from PIL import Image

from adacompress.agents.policies import Decision, Policy
from adacompress.agents.replay_buffer import Transition, TransitionBuffer
from adacompress.cloud_backends.base import BackendError, Recognition, VisionBackend
from adacompress.errors import AdaCompressError
from adacompress.scoring import Scoring
from adacompress.service.events import log_event
from adacompress.service.store import StoreError
from adacompress.upload import Upload

log = logging.getLogger(__name__)

Mode = Literal["inference", "retrain"]
RequestMode = Literal["inference", "estimate"]


class RulesError(AdaCompressError, ValueError):
    code = "bad_rules"


@dataclass
class DaemonState:
    """Where the daemon stands: the estimate rate, the mode, the recent window and the counters."""

    p_est: float
    """Probability that an inference-mode request is estimated (0..1)."""
    window: int
    """How many of the latest estimates `recent_accuracy` and `recent_reward` average over."""
    mode: Mode = "inference"
    retrain_requested: bool = False
    """Set when the rules ask for retraining; cleared when they stop it. The learner acts on it."""
    requests: int = 0
    estimates: int = 0
    """Requests served as estimates (both uploads attempted)."""
    estimate_failures: int = 0
    """Estimates whose reference or compressed upload failed: served, but not scored."""
    transitions: int = 0
    """Transitions handed to the buffer (only learned policies' decisions carry an observation)."""
    retrain_requests: int = 0
    scored: int = 0
    """Scored estimates since the rules last reset the memory (the paper's `len(agent_memory)`)."""
    last_accuracy: float | None = None
    """`recent_accuracy` after the previous scored estimate: the rules' p_est step reads its change."""
    hits: deque[bool] = field(default_factory=deque)
    rewards: deque[float] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.hits = deque(self.hits, maxlen=self.window)
        self.rewards = deque(self.rewards, maxlen=self.window)

    @property
    def recent_accuracy(self) -> float | None:
        """Share of hits over the window (None before the first scored estimate)."""
        return sum(self.hits) / len(self.hits) if self.hits else None

    @property
    def recent_reward(self) -> float | None:
        """Mean reward over the window (None before the first scored estimate)."""
        return sum(self.rewards) / len(self.rewards) if self.rewards else None

    def to_json(self) -> dict[str, Any]:
        return {"p_est": self.p_est, "mode": self.mode, "retrain_requested": self.retrain_requested,
                "recent_accuracy": self.recent_accuracy, "recent_reward": self.recent_reward,
                "window": len(self.hits), "requests": self.requests, "estimates": self.estimates,
                "estimate_failures": self.estimate_failures, "transitions": self.transitions,
                "retrain_requests": self.retrain_requests}


@dataclass(frozen=True)
class PaperRules:
    """AdaCompress's inference-estimate-retrain rules (`inference_estimate_retrain.py`, `RunningAgent`).

    Followed exactly: p_est starts at the floor and is clipped to [floor, ceiling]; recent accuracy and
    reward are means over the last `window` scored estimates; once more than `window` estimates are
    scored, each new one moves p_est by `-p_est_gain * d(recent accuracy)` (the paper's
    `np.gradient(history)[-1]`, a one-sided difference at the end) and requests retraining when recent
    accuracy < `retrain_below_accuracy`; retraining stops when recent reward > `stop_above_reward` and
    recent accuracy > `stop_above_accuracy`, resetting p_est to the floor and clearing the memory.

    Our choices where the paper is not specific, or does not apply to a service:
    - The paper's ESTIMATE state is left with probability 1 - p_est and INFERENCE is left with
      probability p_est, so every request is an estimate with probability p_est: one independent draw
      per request, which is what we do.
    - The accuracy history the p_est step differentiates holds one value per scored estimate.
    - In retrain mode every request is an estimate, as in the paper (the reference is uploaded outside
      INFERENCE), so the learner gets a transition per request.
    - The paper's exit also waits for the agent's epsilon < 0.2; the learner that owns epsilon is not
      part of the daemon, so the exit reads the window only.
    - An estimate whose reference or compressed upload failed is not scored: the window sees only
      real comparisons.
    """

    p_est_floor: float = 0.2
    """Lowest estimate rate, a probability per request (the paper's `explor_rate`)."""
    p_est_ceiling: float = 0.95
    """Highest estimate rate, a probability per request."""
    window: int = 10
    """Scored estimates averaged for recent accuracy and reward, a count (the paper's `recent_zone`)."""
    p_est_gain: float = 3.0
    """p_est change per unit fall of recent accuracy, probability per accuracy (`grad_scale_factor`)."""
    retrain_below_accuracy: float = 0.8
    """Request retraining when recent accuracy (share of hits, 0..1) falls below this (`acc_threshold`)."""
    stop_above_reward: float = 0.45
    """Stop retraining once recent mean reward (scoring's reward units) exceeds this (`reward_threshold`)."""
    stop_above_accuracy: float = 0.8
    """...and recent accuracy (share of hits, 0..1) exceeds this."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_est_floor <= self.p_est_ceiling <= 1.0:
            raise RulesError(f"p_est floor {self.p_est_floor} and ceiling {self.p_est_ceiling} must satisfy "
                             "0 <= floor <= ceiling <= 1")
        if self.window < 1:
            raise RulesError(f"window of {self.window} estimates; it needs at least 1")

    def initial_state(self) -> DaemonState:
        return DaemonState(p_est=self.p_est_floor, window=self.window)

    def estimates(self, state: DaemonState, draw: float) -> bool:
        """Whether the request with uniform `draw` in [0, 1) is an estimate."""
        return state.mode == "retrain" or draw < state.p_est

    def observe(self, state: DaemonState, hit: bool, reward: float) -> str | None:
        """Add one scored estimate to `state`, apply the rules, and name the mode change they made, if any."""
        state.hits.append(hit)
        state.rewards.append(reward)
        state.scored += 1
        accuracy, mean_reward = sum(state.hits) / len(state.hits), sum(state.rewards) / len(state.rewards)
        previous, state.last_accuracy = state.last_accuracy, accuracy
        if state.mode == "retrain":
            if mean_reward > self.stop_above_reward and accuracy > self.stop_above_accuracy:
                state.mode, state.retrain_requested, state.p_est = "inference", False, self.p_est_floor
                state.hits.clear()
                state.rewards.clear()
                state.scored, state.last_accuracy = 0, None
                return "retrain_stopped"
            return None
        if state.scored <= self.window:
            return None
        if previous is not None:
            step = -self.p_est_gain * (accuracy - previous)
            state.p_est = float(np.clip(state.p_est + step, self.p_est_floor, self.p_est_ceiling))
        if accuracy < self.retrain_below_accuracy:
            state.mode, state.retrain_requested = "retrain", True
            state.retrain_requests += 1
            return "retrain_requested"
        return None


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
    """The estimate rate when this request was drawn."""
    policy_version: str


class Daemon:
    """Serves uploads through `policy` and `backend`, estimating at rate p_est under `rules`."""

    def __init__(self, policy: Policy, backend: VisionBackend, scoring: Scoring, buffer: TransitionBuffer | None,
                 rules: PaperRules = PaperRules(), seed: int = 0) -> None:
        self.policy = policy
        self.backend = backend
        self.scoring = scoring
        self.buffer = buffer
        self.rules = rules
        self._state = rules.initial_state()
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    @property
    def state(self) -> DaemonState:
        """A copy of the state, consistent at one instant."""
        with self._lock:
            copy = DaemonState(**{**self._state.__dict__, "hits": self._state.hits, "rewards": self._state.rewards})
        return copy

    def handle(self, upload: bytes | Image.Image | Upload) -> Served:
        """Serve one upload; a `BadImage` raises before anything is sent."""
        policy = self.policy
        image = Upload.of(upload, policy.limits)
        with self._lock:
            self._state.requests += 1
            p_est = self._state.p_est
            estimate = self.rules.estimates(self._state, float(self._rng.random()))
            if estimate:
                self._state.estimates += 1
        decision = policy.decide(image)
        if not estimate:
            answer = self.backend.recognize(decision.data)
            return Served(answer, decision, decision.reference_bytes, "inference", False, None, p_est,
                          decision.policy_version)
        return self._estimate(policy, image, decision, p_est)

    def _share(self, snapshot: dict[str, Any]) -> None:
        """Put the mode and the retrain flag where the learner and other replicas read them (`daemon:state`).

        Only on a change of mode, so the request path pays nothing; a store that is down is logged, not raised.
        """
        if self.buffer is None:
            return
        store = self.buffer.store
        try:
            for name in ("mode", "retrain_requested", "p_est"):
                value = snapshot[name]
                text = ("1" if value else "0") if isinstance(value, bool) else str(value)
                store.hset(store.keys.daemon_state, name, text.encode())
        except StoreError as exc:
            log_event(log, logging.WARNING, "daemon_state_not_shared", error=str(exc), code=exc.code)

    def _estimate(self, policy: Policy, image: Upload, decision: Decision, p_est: float) -> Served:
        reference_data = image.encoded(policy.reference).data
        compressed = reference = None
        failure: BackendError | None = None
        try:
            compressed = self.backend.recognize(decision.data)
        except BackendError as exc:
            failure = exc
        try:
            reference = self.backend.recognize(reference_data, use_cache=False)
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
        transition = (Transition.from_decision(decision, hit, len(reference_data))
                      if self.buffer is not None and decision.observation is not None else None)
        with self._lock:
            change = self.rules.observe(self._state, hit, reward)
            if transition is not None:
                self._state.transitions += 1
            snapshot = self._state.to_json() if change else None
        if transition is not None:
            assert self.buffer is not None
            self.buffer.add(transition)
        if change:
            log_event(log, logging.WARNING if change == "retrain_requested" else logging.INFO, change,
                      policy_version=decision.policy_version, **(snapshot or {}))
            self._share(snapshot or {})
        return Served(reference, decision, len(reference_data), "estimate", True, hit, p_est, decision.policy_version)
