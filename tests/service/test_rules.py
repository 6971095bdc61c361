"""The rule sets' arithmetic on synthetic streams: the dial's fixed point, the estimate rate, retraining, drift.

No CNN here: a rule set sees only hits, rewards and observations, so a seeded simulated policy whose hit
rate falls as its size weight rises exercises every branch in milliseconds. The daemon tests run the
same rules on the real CNN.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from adacompress.service.input_drift import DriftSettingsError, InputDrift, InputDriftSettings
from adacompress.service.rules import PaperRules, RulesError, TargetRules, rules_from_name, wilson_interval


def simulate(rules: TargetRules, keep_rate, requests: int, seed: int = 0, size_weight: float = 0.4,
             state=None, belief=None):
    """Serve `requests` where a compressed answer is kept with probability `keep_rate(size_weight)`.

    `belief(rng) -> (believed, true)` keep chances per request, when the policy has beliefs to draw by.
    """
    rng = np.random.default_rng(seed)
    state = state if state is not None else rules.initial_state(size_weight)
    served = []
    for _ in range(requests):
        believed, true = belief(rng) if belief else (None, keep_rate(state.size_weight))
        probability = rules.estimate_probability(state, None, believed)
        estimate = bool(rng.random() < probability)
        state.note_request(estimate)
        kept = bool(rng.random() < true)
        if estimate:
            rules.on_estimate(state, kept, 0.0, probability)
        served.append(True if estimate else kept)  # an estimate serves the reference's own answer
    return state, served


def test_wilson_interval_matches_the_closed_form():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    low, high = wilson_interval(98, 100)
    assert low == pytest.approx(0.9300, abs=1e-4) and high == pytest.approx(0.9945, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def unsure_fifth(rng: np.random.Generator) -> tuple[float, float]:
    """A fifth of requests the policy is unsure of (believes 0.9, keeps 0.8); the rest it is sure of (0.999, 0.99)."""
    return (0.9, 0.8) if rng.random() < 0.2 else (0.999, 0.99)


def test_requests_the_policy_is_unsure_of_are_estimated_more_and_weighted_back():
    rules = TargetRules(target_accuracy=0.5, p_est_floor=0.1, alert_requests=0, window=100_000, drift=None)
    state, _ = simulate(rules, None, 40_000, belief=unsure_fifth)
    weights = np.array(state.weights)
    unsure = weights < 1.0  # drawn above the base rate, weighted below 1
    # A fifth of requests, believed to miss 100x more often: drawn at 0.48 against 0.01 for the rest.
    assert 0.85 < unsure.mean() < 0.97
    assert state.estimates / state.requests == pytest.approx(0.1, abs=0.02)
    raw = np.mean(state.hits)
    accuracy, low, high = state.accuracy_interval()
    truth = 0.2 * 0.8 + 0.8 * 0.99
    assert raw < truth - 0.03  # the unweighted share is dragged down by the oversampled unsure requests
    assert low <= truth <= high and accuracy == pytest.approx(truth, abs=0.01)


def test_the_dial_settles_where_the_served_share_meets_the_target():
    # Keep rate falls linearly with the size weight: 0.9 at the agent's own 0.4, 1.0 at 0. The target
    # needs 0.98 kept, so the dial must come down to about 0.08.
    def keep_rate(weight: float) -> float:
        return 1.0 - 0.1 * weight / 0.4

    rules = TargetRules(target_accuracy=0.98, drift=None)
    state, served = simulate(rules, keep_rate, 20_000)
    assert state.size_weight is not None and 0.0 < state.size_weight < 0.4
    assert keep_rate(state.size_weight) == pytest.approx(0.98, abs=0.01)
    # The estimates carry few misses at 98% (about one per 400 requests at the floor rate): the dial wanders
    # around its fixed point, so the long-run share is held to the 1 point a user would notice.
    assert np.mean(served[-10_000:]) == pytest.approx(0.98, abs=0.01)
    assert state.mode == "inference" and state.retrain_requests == 0


def test_an_easy_stream_loosens_the_dial_and_a_hard_one_tightens_it():
    rules = TargetRules(target_accuracy=0.9, drift=None)
    easy, _ = simulate(rules, lambda w: 1.0, 2_000)
    hard, _ = simulate(rules, lambda w: 0.5 + 0.4 * math.exp(-w * 10), 2_000)
    assert easy.size_weight == pytest.approx(0.4 * rules.dial_range[1])  # every answer kept: bytes get cheaper
    assert hard.size_weight is not None and hard.size_weight < 0.4 * 0.5


def test_a_miss_where_the_policy_was_sure_moves_the_dial_by_the_capped_weight():
    rules = TargetRules(target_accuracy=0.9, min_scored=10, drift=None)
    state = rules.initial_state(0.4)
    state.p_est = 0.05
    for _ in range(20):  # weight 1: each kept answer raises log(w) by gain x 0.1
        rules.on_estimate(state, hit=True, reward=0.0, probability=0.05)
    assert state.size_weight == pytest.approx(0.4 * math.exp(rules.dial_gain * 20 * 0.1))
    before = state.size_weight
    rules.on_estimate(state, hit=False, reward=0.0, probability=0.01)  # weight 5 in the accuracy, capped in the dial
    assert state.weights[-1] == pytest.approx(5.0)
    assert state.size_weight == pytest.approx(before * math.exp(-rules.dial_gain * rules.max_weight * 0.9))
    assert rules.max_weight < 5.0


def test_the_estimate_rate_is_high_at_a_cold_start_then_falls_to_the_floor():
    rules = TargetRules(alert_requests=100, p_est_floor=0.02, p_est_alert=0.6, drift=None)
    state = rules.initial_state(0.4)
    rates = []
    rng = np.random.default_rng(1)
    for _ in range(300):
        probability = rules.estimate_probability(state, None, None)
        estimate = bool(rng.random() < probability)
        state.note_request(estimate)
        if estimate:
            rules.on_estimate(state, True, 0.0, probability)
        rates.append(probability)
    assert rates[:99] == [0.6] * 99 and rates[100:] == [0.02] * 200


def test_an_accuracy_clearly_below_the_goal_keeps_estimating_and_asks_for_retraining_at_the_dial_floor():
    rules = TargetRules(target_accuracy=0.98, alert_requests=50, drift=None)
    state, _ = simulate(rules, lambda w: 0.7, 3_000)  # no size weight helps: only retraining can
    assert state.size_weight == pytest.approx(0.4 * rules.dial_range[0])
    assert state.mode == "retrain" and state.retrain_requested and state.retrain_requests == 1
    assert state.p_est == rules.p_est_alert
    recovered, _ = simulate(rules, lambda w: 1.0, 3_000, seed=1, state=state)
    assert recovered.mode == "inference" and not recovered.retrain_requested


def test_a_policy_that_holds_the_target_never_asks_for_retraining():
    state, _ = simulate(TargetRules(target_accuracy=0.9, drift=None), lambda w: 0.97, 5_000)
    assert state.retrain_requests == 0 and state.mode == "inference"


def test_a_new_policy_restarts_the_dial_and_the_window():
    rules = TargetRules(drift=None)
    state, _ = simulate(rules, lambda w: 0.8, 1_000)
    assert state.hits and state.size_weight != 0.4
    rules.on_policy_change(state, 0.25)
    assert (state.size_weight, state.base_size_weight, len(state.hits)) == (0.25, 0.25, 0)
    assert state.alert_remaining == rules.alert_requests


def test_served_accuracy_and_its_interval_include_the_estimates():
    state = TargetRules().initial_state(0.4)
    assert state.served_accuracy() is None
    for hit in [True] * 18 + [False] * 2:
        state.remember(hit, 0.0)
    state.estimated_share = 0.5
    accuracy, low, high = state.served_accuracy()
    assert accuracy == pytest.approx(0.95)  # 0.5 + 0.5 * 0.9
    assert low == pytest.approx(0.5 + 0.5 * wilson_interval(18, 20)[0])
    assert low < accuracy < high <= 1.0
    shared = state.to_json()
    assert shared["estimated_accuracy"] == pytest.approx(0.95) and shared["accuracy_interval"] == [low, high]


def test_rule_sets_by_name_and_bad_settings():
    assert isinstance(rules_from_name("paper"), PaperRules)
    assert rules_from_name("adacompress", 0.9).target_accuracy == 0.9
    with pytest.raises(RulesError, match="hold no accuracy target"):
        rules_from_name("paper", 0.98)
    with pytest.raises(RulesError, match="unknown rule set"):
        rules_from_name("greedy")
    with pytest.raises(RulesError, match="between 0 and 1"):
        TargetRules(target_accuracy=98)
    with pytest.raises(RulesError, match="bracket 1"):
        TargetRules(dial_range=(0.5, 0.9))


def _stream(rng: np.random.Generator, n: int, shift: float = 0.0) -> list[np.ndarray]:
    base = rng.normal(size=(n, 8)) * np.array([1, 2, 0.5, 1, 1, 3, 1, 0.1])
    base[:, :3] += shift * np.array([1, 2, 0.5])  # a shift of `shift` standard deviations in 3 of 8 features
    return list(base)


def test_input_drift_stays_quiet_on_stationary_inputs_and_alarms_once_on_a_shift():
    rng = np.random.default_rng(0)
    detector = InputDrift(InputDriftSettings(fast_halflife_requests=50, threshold=0.1, warmup_requests=200))
    quiet = [detector.update(x) for x in _stream(rng, 5_000)]
    assert not any(quiet) and detector.score < 0.05
    shifted = [detector.update(x) for x in _stream(rng, 1_000, shift=1.5)]
    assert shifted.index(True) < 60 and sum(shifted) == 1 and detector.alarms == 1


def test_input_drift_waits_for_its_warmup_and_validates_its_settings():
    rng = np.random.default_rng(0)
    detector = InputDrift(InputDriftSettings(warmup_requests=300))
    early = _stream(rng, 100) + _stream(rng, 150, shift=3.0)
    assert not any(detector.update(x) for x in early)
    with pytest.raises(DriftSettingsError):
        InputDriftSettings(fast_halflife_requests=100, slow_halflife_requests=50)
    with pytest.raises(DriftSettingsError):
        InputDriftSettings(threshold=0)


def test_a_drift_alarm_raises_the_estimate_rate_before_any_answer_is_lost():
    rng = np.random.default_rng(0)
    rules = TargetRules(alert_requests=100, p_est_floor=0.01, p_est_alert=0.5)
    state = rules.initial_state(0.4)
    for x in _stream(rng, 1_000):
        rules.estimate_probability(state, x, None)  # no draw: no estimate, no answer scored
    assert state.p_est == 0.01 and state.scored == 0
    rates = [rules.estimate_probability(state, x, None) for x in _stream(rng, 100, shift=2.0)]
    assert 0.5 in rates and state.scored == 0 and state.drift is not None and state.drift.alarms == 1


def test_a_confidently_wrong_policy_gets_a_quality_floor_when_the_dial_cannot_help():
    # The dial changes nothing (a saturated network); each rung of floor keeps 4 more points of the answers.
    rules = TargetRules(target_accuracy=0.98, alert_requests=0, p_est_floor=0.3, drift=None)
    state = rules.initial_state(0.4)
    rng = np.random.default_rng(0)
    served = []
    for _ in range(20_000):
        probability = rules.estimate_probability(state, None, None)
        estimate = bool(rng.random() < probability)
        state.note_request(estimate)
        kept = bool(rng.random() < min(1.0, 0.86 + 0.04 * state.min_rung))
        if estimate:
            rules.on_estimate(state, kept, 0.0, probability)
        served.append(True if estimate else kept)
    assert state.min_rung >= 3  # 0.98 needs the floor at 3 (0.98) or 4 (1.0)
    assert np.mean(served[-5_000:]) >= 0.97
    assert state.retrain_requests >= 1  # the floor is a stopgap; the policy itself must learn


def test_a_drift_alarm_resets_the_floor_and_the_dial():
    rules = TargetRules()
    state = rules.initial_state(0.4)
    state.min_rung, state.size_weight = 3, 0.05
    rng = np.random.default_rng(0)
    for x in _stream(rng, 600):
        rules.estimate_probability(state, x, None)
    assert (state.min_rung, state.size_weight) == (3, 0.05)  # no drift, nothing reset
    for x in _stream(rng, 100, shift=2.0):
        rules.estimate_probability(state, x, None)
    assert (state.min_rung, state.size_weight) == (0, 0.4)
