"""Hit rules and the reward, on hand-built recognitions."""

from __future__ import annotations

import pytest

from adacompress.cloud_backends.base import Label, Recognition
from adacompress.errors import AdaCompressError
from adacompress.scoring import HitRule, Scoring, hit, reward


def answer(*labels: tuple[str, float]) -> Recognition:
    labelled = tuple(Label(name, score) for name, score in labels)
    return Recognition(labelled, raw={}, latency_s=0.0, bytes_sent=0)


CAT = answer(("tabby", 0.7), ("tiger cat", 0.2), ("lynx", 0.05))
NOTHING = answer()


@pytest.mark.parametrize("compressed, rule, min_score, expected", [
    (answer(("tabby", 0.6)), HitRule.IN_LABELS, 0.0, True),
    (answer(("tiger cat", 0.5), ("tabby", 0.3)), HitRule.IN_LABELS, 0.0, True),
    (answer(("tiger cat", 0.5), ("tabby", 0.3)), HitRule.TOP1, 0.0, False),
    (answer(("tabby", 0.5), ("tiger cat", 0.3)), HitRule.TOP1, 0.0, True),
    (answer(("tiger cat", 0.5), ("lynx", 0.3)), HitRule.IN_LABELS, 0.0, False),
    (answer(("tiger cat", 0.5), ("tabby", 0.3)), HitRule.IN_LABELS, 0.3, True),
    (answer(("tiger cat", 0.5), ("tabby", 0.29)), HitRule.IN_LABELS, 0.3, False),
    (answer(("tabby", 0.2), ("tiger cat", 0.1)), HitRule.TOP1, 0.25, False),
    (answer(("lynx", 0.1), ("tabby", 0.9)), HitRule.TOP1, 0.2, True),  # low labels do not count as top-1
    (NOTHING, HitRule.IN_LABELS, 0.0, False),
    (NOTHING, HitRule.TOP1, 0.0, False),
    (answer(("Tabby", 0.9)), HitRule.IN_LABELS, 0.0, False),  # names match exactly
])
def test_hit_rules(compressed, rule, min_score, expected):
    assert hit(CAT, compressed, rule, min_score) is expected
    assert Scoring(rule=rule, min_score=min_score).hit(CAT, compressed) is expected


@pytest.mark.parametrize("compressed, min_score, expected", [
    (NOTHING, 0.0, True),
    (answer(("tabby", 0.4)), 0.0, False),
    (answer(("tabby", 0.04)), 0.05, True),  # only labels below min_score: still "nothing"
    (answer(("tabby", 0.06)), 0.05, False),
])
@pytest.mark.parametrize("rule", list(HitRule))
def test_empty_reference_is_kept_only_by_an_empty_answer(compressed, min_score, expected, rule):
    assert hit(NOTHING, compressed, rule, min_score) is expected


def test_default_rule_is_the_papers():
    scoring = Scoring()
    assert scoring.rule is HitRule.IN_LABELS
    assert (scoring.alpha, scoring.beta, scoring.min_score) == (1.0, 1.0, 0.0)
    assert HitRule("in-labels") is HitRule.IN_LABELS and HitRule("top1") is HitRule.TOP1


def test_a_recognition_always_keeps_itself():
    for rule in HitRule:
        assert hit(CAT, CAT, rule)
        assert hit(NOTHING, NOTHING, rule)


@pytest.mark.parametrize("is_hit, sent, reference, alpha, beta, expected", [
    (True, 500, 1000, 1.0, 1.0, 0.5),
    (False, 500, 1000, 1.0, 1.0, -0.5),
    (True, 1000, 1000, 1.0, 1.0, 0.0),
    (True, 2000, 1000, 1.0, 1.0, -1.0),  # bigger than the reference costs more than a hit earns
    (True, 250, 1000, 2.0, 1.0, 1.75),
    (True, 250, 1000, 1.0, 3.0, 0.25),
    (False, 0, 1000, 1.0, 1.0, 0.0),
    (True, 123, 456, 0.7, 0.3, 0.7 - 0.3 * 123 / 456),
])
def test_reward_arithmetic(is_hit, sent, reference, alpha, beta, expected):
    assert reward(is_hit, sent, reference, alpha, beta) == pytest.approx(expected)
    assert Scoring(alpha=alpha, beta=beta).reward(is_hit, sent, reference) == pytest.approx(expected)


def test_reward_prefers_fewer_bytes_and_hits():
    assert reward(True, 300, 1000) > reward(True, 600, 1000) > reward(False, 300, 1000)


@pytest.mark.parametrize("reference", [0, -1])
def test_reward_needs_a_positive_reference_size(reference):
    with pytest.raises(AdaCompressError, match=f"got {reference} bytes"):
        reward(True, 100, reference)
    with pytest.raises(AdaCompressError):
        Scoring().reward(False, 100, reference)
