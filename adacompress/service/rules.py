"""The daemon's rule sets: when to estimate, how to read estimates, when to ask for retraining.

A rule set is told of every decided request (`estimate_probability`, with the observation and the belief the
policy computed anyway) and gives the chance it is made an estimate; it is told of every scored estimate
(`on_estimate`) and moves the estimate rate, the accuracy dial and the mode. `PaperRules` are
AdaCompress's, to the letter; `TargetRules` (`--rules adacompress`, the default) hold an accuracy target
the user sets.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from adacompress.errors import AdaCompressError
from adacompress.service.input_drift import InputDrift, InputDriftSettings

Mode = Literal["inference", "retrain"]
RULE_SETS = ("adacompress", "paper")
SHARE_HALFLIFE_REQUESTS = 300.0
"""Requests after which a past request weighs half in the recent estimated share."""
_SHARE_WEIGHT = 1.0 - 2.0 ** (-1.0 / SHARE_HALFLIFE_REQUESTS)
_MISS_WEIGHT = 0.02
"""Weight of the newest request in the recent mean of believed misses (a memory of about 50 requests)."""


class RulesError(AdaCompressError, ValueError):
    code = "bad_rules"


def wilson_interval(hits: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a share: honest near 0 and 1, where the normal one claims certainty."""
    if n == 0:
        return 0.0, 1.0
    share = hits / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class DaemonState:
    """Where the daemon stands: estimate rate, mode, dial, the recent estimates and the counters."""

    p_est: float
    """Probability that a request is estimated (0..1)."""
    window: int
    """How many of the latest scored estimates `recent_accuracy` and `recent_reward` average over."""
    mode: Mode = "inference"
    retrain_requested: bool = False
    """Set when the rules ask for retraining; cleared when they stop it. The learner acts on it."""
    requests: int = 0
    estimates: int = 0
    """Requests served as estimates (both uploads attempted)."""
    estimate_failures: int = 0
    """Estimates whose reference or compressed upload failed: served, but not scored."""
    transitions: int = 0
    """Transitions handed to the buffer (one per labelled rung; only learned policies make them)."""
    retrain_requests: int = 0
    scored: int = 0
    """Scored estimates since the rules last reset the memory (the paper's `len(agent_memory)`)."""
    last_accuracy: float | None = None
    """`recent_accuracy` after the previous scored estimate: the paper's p_est step reads its change."""
    hits: deque[bool] = field(default_factory=deque)
    """Whether the compressed answer kept the reference's, for the latest scored estimates."""
    weights: deque[float] = field(default_factory=deque)
    """Each of those estimates' weight: the base rate over the chance it had to be drawn (1 when uniform)."""
    rewards: deque[float] = field(default_factory=deque)
    target_accuracy: float | None = None
    """Share of served answers the user wants kept (None: no target, the paper's rules)."""
    size_weight: float | None = None
    """The accuracy dial: the known-cost head's weight on bytes (None: the policy has no dial)."""
    base_size_weight: float | None = None
    """The serving policy's own size weight, which the dial's range is relative to."""
    min_rung: int = 0
    """The quality floor: decisions choose this rung or above (raised when the dial alone cannot hold the
    target, as when the policy is confidently wrong and no size weight changes its mind)."""
    estimated_share: float = 0.0
    """Recent share of requests served as estimates (their answers are the reference's: always kept)."""
    estimated_share_raw: float = 0.0
    """The same average before its correction for starting at 0."""
    alert_remaining: int = 0
    """Requests left at the alert estimate rate (cold start, input drift, accuracy clearly below target)."""
    predicted_miss: float = 0.02
    """Recent mean of the policy's believed chance of losing the answer, per request (what draws are scaled by)."""
    drift: InputDrift | None = None

    def __post_init__(self) -> None:
        self.hits = deque(self.hits, maxlen=self.window)
        self.weights = deque(self.weights, maxlen=self.window)
        self.rewards = deque(self.rewards, maxlen=self.window)

    def remember(self, hit: bool, reward: float, weight: float = 1.0) -> None:
        """Add one scored estimate to the window."""
        self.hits.append(hit)
        self.weights.append(weight)
        self.rewards.append(reward)
        self.scored += 1

    def forget(self) -> None:
        """Clear the window: what it says is about a policy or a regime that is gone."""
        self.hits.clear()
        self.weights.clear()
        self.rewards.clear()
        self.scored = 0

    def note_request(self, estimated: bool) -> None:
        """Count one request into the counters and the recent estimated share."""
        self.requests += 1
        self.estimates += estimated
        self.estimated_share_raw += _SHARE_WEIGHT * (float(estimated) - self.estimated_share_raw)
        self.estimated_share = self.estimated_share_raw / (1.0 - (1.0 - _SHARE_WEIGHT) ** self.requests)

    @property
    def recent_accuracy(self) -> float | None:
        """Share of compressed answers kept over the window, weighted (None before the first scored estimate)."""
        return self.accuracy_interval()[0] if self.hits else None

    def accuracy_interval(self) -> tuple[float, float, float]:
        """Weighted share of compressed answers kept, with a 95% Wilson interval at the effective sample size.

        Estimates drawn more often where the policy is unsure are weighted back down, so the share speaks
        for all requests; the effective size (sum w)^2 / sum w^2 keeps the interval honest about it.
        """
        weights = np.fromiter(self.weights, float, len(self.weights))
        hits = np.fromiter(self.hits, float, len(self.hits))
        if not len(hits):
            return 0.0, 0.0, 1.0
        share = float(weights @ hits / weights.sum())
        effective = float(weights.sum() ** 2 / (weights @ weights))
        low, high = wilson_interval(share * effective, effective)
        return share, low, high

    @property
    def recent_reward(self) -> float | None:
        """Mean reward over the window (None before the first scored estimate)."""
        return sum(self.rewards) / len(self.rewards) if self.rewards else None

    def served_accuracy(self) -> tuple[float, float, float] | None:
        """Estimated share of served answers kept, with its 95% interval: estimates serve the reference's."""
        if not self.hits:
            return None
        kept = self.estimated_share
        return tuple(kept + (1 - kept) * a for a in self.accuracy_interval())  # type: ignore[return-value]

    def to_json(self) -> dict[str, Any]:
        served = self.served_accuracy()
        return {"p_est": self.p_est, "mode": self.mode, "retrain_requested": self.retrain_requested,
                "recent_accuracy": self.recent_accuracy, "recent_reward": self.recent_reward,
                "window": len(self.hits), "requests": self.requests, "estimates": self.estimates,
                "estimate_failures": self.estimate_failures, "transitions": self.transitions,
                "retrain_requests": self.retrain_requests, "target_accuracy": self.target_accuracy,
                "size_weight": self.size_weight, "min_rung": self.min_rung, "estimated_share": self.estimated_share,
                "estimated_accuracy": served[0] if served else None,
                "accuracy_interval": list(served[1:]) if served else None,
                "predicted_miss": self.predicted_miss, "drift_score": self.drift.score if self.drift else None,
                "drift_alarms": self.drift.alarms if self.drift else 0}


class Rules(Protocol):
    """What the daemon asks of a rule set."""

    name: str
    monotone_labels: bool
    """Whether a scored estimate also labels the rungs monotonicity implies (above a hit, below a miss)."""

    def initial_state(self, size_weight: float | None) -> DaemonState: ...

    def estimate_probability(self, state: DaemonState, observation: np.ndarray | None,
                             hit_probability: float | None) -> float:
        """Account for one decided request; the chance it is made an estimate."""

    def on_estimate(self, state: DaemonState, hit: bool, reward: float, probability: float) -> str | None:
        """Account for one scored estimate drawn with `probability`; the name of the mode change made, if any."""

    def on_policy_change(self, state: DaemonState, size_weight: float | None) -> None:
        """A new policy serves: what was learned about the old one's accuracy no longer holds."""


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
    name: str = "paper"
    monotone_labels: bool = False
    """The paper learns from the uploaded rung alone."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_est_floor <= self.p_est_ceiling <= 1.0:
            raise RulesError(f"p_est floor {self.p_est_floor} and ceiling {self.p_est_ceiling} must satisfy "
                             "0 <= floor <= ceiling <= 1")
        if self.window < 1:
            raise RulesError(f"window of {self.window} estimates; it needs at least 1")

    def initial_state(self, size_weight: float | None = None) -> DaemonState:
        return DaemonState(p_est=self.p_est_floor, window=self.window, size_weight=size_weight,
                           base_size_weight=size_weight)

    def estimate_probability(self, state: DaemonState, observation: np.ndarray | None,
                             hit_probability: float | None) -> float:
        return 1.0 if state.mode == "retrain" else state.p_est

    def on_estimate(self, state: DaemonState, hit: bool, reward: float, probability: float = 1.0) -> str | None:
        state.remember(hit, reward)
        accuracy, mean_reward = sum(state.hits) / len(state.hits), sum(state.rewards) / len(state.rewards)
        previous, state.last_accuracy = state.last_accuracy, accuracy
        if state.mode == "retrain":
            if mean_reward > self.stop_above_reward and accuracy > self.stop_above_accuracy:
                state.mode, state.retrain_requested, state.p_est = "inference", False, self.p_est_floor
                state.forget()
                state.last_accuracy = None
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

    def on_policy_change(self, state: DaemonState, size_weight: float | None) -> None:
        state.size_weight = state.base_size_weight = size_weight  # the paper keeps its window across retrains


@dataclass(frozen=True)
class TargetRules:
    """Hold a share of served answers kept (`target_accuracy`), spending as few estimates as that allows.

    - **The dial.** The known-cost head picks argmax P(hit) - size_weight * size, so size_weight prices
      bytes in accuracy. After each scored estimate, log(size_weight) moves by
      `dial_gain * min(weight, max_weight) * (hit - target)`: a stochastic dual ascent on the accuracy
      constraint, at rest where the compressed answers are kept at the target rate. Estimates serve the
      reference's answer, so the served share ends a little above the target (by the estimate share times
      the miss rate). The accuracy moves only a few points per tenfold turn of the dial, so the dial steps
      gently: a big step makes it wander far before the answers call it back.
    - **Where to look.** A policy moved to a new backend or new scenes is wrong where it was unsure: on
      the sample photos under Lite0, the 30% of requests it was least sure of held two thirds of the lost
      answers. So a request is drawn with a chance proportional to the policy's believed chance of losing
      the answer (never below `min_rate_share` of the base rate), and its estimate is weighted by the base
      rate over that chance, which keeps the accuracy estimate unbiased while finding about twice the
      misses per estimate.
    - **The estimate rate.** A base of `p_est_floor` (far below the paper's 20%) in steady state;
      `p_est_alert` for `alert_requests` requests at a cold start or a new policy (its accuracy on this
      traffic is unknown), on an input-drift alarm (the observations moved: night, fog, a new camera), and
      while the accuracy's 95% interval lies wholly below the target.
    - **The quality floor.** A policy that is confidently wrong (every rung's hit probability near 1 on photos
      unlike its training set) ignores the dial. So when the dial is at its lowest and the interval still lies
      below the target, the lowest rung decisions may choose goes up by one, and the window starts afresh to
      judge the new floor; it comes down by one when the interval lies wholly above the target. An input-drift
      alarm or a new policy resets it, with the dial: their evidence was about another regime.
    - **Retraining** is requested when the dial is at its lowest and the interval still lies below the
      target (the dial alone cannot hold it); it stops once the interval reaches the target again.
    - **Labels.** With answers nearly monotone in quality, a hit at the uploaded rung labels the rungs above
      it and a miss those below, so each estimate gives the learner several transitions.
    """

    target_accuracy: float = 0.98
    """Share of answers that keep the reference's answer (0..1)."""
    p_est_floor: float = 0.05
    """Base estimate rate when nothing moves, a probability per request."""
    p_est_alert: float = 0.5
    """Base estimate rate while the accuracy is unknown or in doubt, a probability per request."""
    alert_requests: int = 200
    """Requests an alert lasts."""
    window: int = 200
    """Scored estimates in the accuracy estimate and its interval."""
    min_scored: int = 30
    """Scored estimates before the interval may trigger an alert or a retrain."""
    dial_gain: float = 0.35
    """Change of log(size_weight) per unit of weight * (hit - target), per scored estimate. A larger gain buys
    speed with wander: over 300 orders of `bench/bench_hold_target.py` the settled accuracy landed within 1 point
    in 88% of them with 0.5 and a weight cap of 3, and in 94% with these defaults (a perfect dial: 96%), while
    day-to-night under 40 seeds (`bench/bench_drift_seeds.py`) kept as many night answers."""
    dial_range: tuple[float, float] = (1 / 64, 4.0)
    """Lowest and highest size_weight, as multiples of the policy's own."""
    min_rate_share: float = 0.1
    """Lowest chance of an estimate for a request the policy is sure of, as a share of the base rate."""
    max_min_rung: int = 10
    """Highest quality floor, a rung index (the policy clips it to its ladder)."""
    max_weight: float = 1.0
    """Cap on an estimate's weight in the dial's step (not in the accuracy estimate): a rare miss where the
    policy was sure moves the dial, but not wildly (one miss at weight 3 cut the dial fourfold, and at 5% of
    requests estimated it took a thousand requests to climb back). It leans the dial toward the unsure
    requests, so a little toward keeping answers."""
    drift: InputDriftSettings | None = field(default_factory=InputDriftSettings)
    """Input-drift detection (None: off)."""
    name: str = "adacompress"
    monotone_labels: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.target_accuracy < 1.0:
            raise RulesError(f"target accuracy {self.target_accuracy} must be a share between 0 and 1 "
                             "(exclusive), e.g. 0.98")
        if not 0.0 <= self.p_est_floor <= self.p_est_alert <= 1.0:
            raise RulesError(f"p_est floor {self.p_est_floor} and alert {self.p_est_alert} must satisfy "
                             "0 <= floor <= alert <= 1")
        if self.window < 1 or self.min_scored < 1 or self.alert_requests < 0 or self.dial_gain <= 0:
            raise RulesError("window, min_scored and dial_gain must be positive and alert_requests >= 0")
        if not 0 < self.dial_range[0] <= 1 <= self.dial_range[1]:
            raise RulesError(f"dial range {self.dial_range} must bracket 1 (the policy's own size weight)")
        if not 0 < self.min_rate_share <= 1 or self.max_weight < 1:
            raise RulesError(f"min_rate_share {self.min_rate_share} must be in (0, 1] and max_weight "
                             f"{self.max_weight} >= 1")

    def initial_state(self, size_weight: float | None = None) -> DaemonState:
        return DaemonState(p_est=self.p_est_alert if self.alert_requests else self.p_est_floor, window=self.window,
                           target_accuracy=self.target_accuracy, size_weight=size_weight,
                           base_size_weight=size_weight, alert_remaining=self.alert_requests,
                           predicted_miss=1.0 - self.target_accuracy,
                           drift=InputDrift(self.drift) if self.drift is not None else None)

    def estimate_probability(self, state: DaemonState, observation: np.ndarray | None,
                             hit_probability: float | None) -> float:
        if state.drift is not None and observation is not None and state.drift.update(observation):
            state.alert_remaining = max(state.alert_remaining, self.alert_requests)
            state.min_rung, state.size_weight = 0, state.base_size_weight  # learned about the old regime
            state.forget()
        if state.alert_remaining > 0:
            state.alert_remaining -= 1
        alert = state.alert_remaining > 0 or state.mode == "retrain"
        state.p_est = self.p_est_alert if alert else self.p_est_floor
        if hit_probability is None:
            return state.p_est
        miss = 1.0 - hit_probability
        state.predicted_miss += _MISS_WEIGHT * (miss - state.predicted_miss)
        scaled = state.p_est * miss / max(state.predicted_miss, 1e-6)
        return float(min(1.0, max(self.min_rate_share * state.p_est, scaled)))

    def on_estimate(self, state: DaemonState, hit: bool, reward: float, probability: float = 1.0) -> str | None:
        weight = state.p_est / max(probability, 1e-9)  # at most 1 / min_rate_share
        state.remember(hit, reward, weight)
        at_lowest = True  # a policy without a dial: only retraining can move its accuracy
        if state.size_weight is not None and state.base_size_weight is not None:
            low, high = (state.base_size_weight * bound for bound in self.dial_range)
            step = self.dial_gain * min(weight, self.max_weight) * (hit - self.target_accuracy)
            state.size_weight = float(np.clip(state.size_weight * math.exp(step), low, high))
            at_lowest = state.size_weight <= low * (1 + 1e-9)
        if len(state.hits) < self.min_scored:
            return None
        _, lower, upper = state.accuracy_interval()
        failing = upper < self.target_accuracy
        if failing:
            state.alert_remaining = max(state.alert_remaining, self.alert_requests)
        if failing and at_lowest and state.min_rung < self.max_min_rung:
            state.min_rung += 1
            state.forget()
        elif lower > self.target_accuracy and state.min_rung > 0:
            state.min_rung -= 1
            state.forget()
        if state.mode == "inference" and failing and at_lowest:
            state.mode, state.retrain_requested = "retrain", True
            state.retrain_requests += 1
            return "retrain_requested"
        if state.mode == "retrain" and not failing:
            state.mode, state.retrain_requested = "inference", False
            return "retrain_stopped"
        return None

    def on_policy_change(self, state: DaemonState, size_weight: float | None) -> None:
        state.size_weight = state.base_size_weight = size_weight
        state.min_rung = 0
        state.forget()
        state.alert_remaining = max(state.alert_remaining, self.alert_requests)


def rules_from_name(name: str, target_accuracy: float | None = None) -> PaperRules | TargetRules:
    """`adacompress` (with the target, default 0.98) or `paper` (which has no target to hold)."""
    if name == "paper":
        if target_accuracy is not None:
            raise RulesError("the paper's rules hold no accuracy target; use --rules adacompress with "
                             "--target-accuracy")
        return PaperRules()
    if name == "adacompress":
        return TargetRules() if target_accuracy is None else TargetRules(target_accuracy=target_accuracy)
    raise RulesError(f"unknown rule set {name!r}; use one of {', '.join(RULE_SETS)}")
