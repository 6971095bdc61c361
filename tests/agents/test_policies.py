"""Each baseline policy's contract, checked against a real backend's answers."""

from __future__ import annotations

import pytest

from adacompress.agents.policies import FixedPolicy, OraclePolicy, PolicyError, RandomPolicy, policy_from_spec
from adacompress.cloud_backends.registry import create_backend
from adacompress.codec import DEFAULT_LADDER, Action, Ladder
from adacompress.images import ImageSet
from adacompress.outcomes import OutcomeTable


@pytest.fixture(scope="module")
def table(photo_dir) -> OutcomeTable:
    return OutcomeTable(ImageSet.from_folder(photo_dir), create_backend("local:lite0"), DEFAULT_LADDER)


@pytest.mark.parametrize("quality", [5, 45, 95])
def test_fixed_policy_always_picks_its_rung(table, quality):
    policy = policy_from_spec(f"fixed:{quality}", DEFAULT_LADDER)
    chosen = {policy.choose(table, i) for i in range(len(table))}
    assert chosen == {DEFAULT_LADDER.actions.index(Action("jpeg", quality))}
    assert policy.action_for(table.images.load(0)) == Action("jpeg", quality)


def test_fixed_policy_off_the_ladder_is_a_clear_error(table):
    with pytest.raises(PolicyError, match="not on the ladder"):
        FixedPolicy(Action("jpeg", 50)).choose(table, 0)


def test_random_policy_is_seeded_and_covers_the_ladder(table):
    picks = [RandomPolicy(seed=7).choose(table, 0) for _ in range(3)]
    assert len(set(picks)) == 1
    policy = RandomPolicy(seed=1)
    many = {policy.choose(table, 0) for _ in range(200)}
    assert many == set(range(len(DEFAULT_LADDER)))


def test_oracle_picks_the_cheapest_rung_that_hits(table):
    oracle = OraclePolicy()
    for i in range(len(table)):
        choice = oracle.choose(table, i)
        assert table.outcome(i, choice).hit
        sizes = table.sizes(i)
        cheaper = [a for a in range(len(DEFAULT_LADDER)) if sizes[a] < sizes[choice]]
        assert not any(table.outcome(i, a).hit for a in cheaper)


def test_oracle_cannot_run_on_new_images(table):
    with pytest.raises(PolicyError, match="needs the backend"):
        OraclePolicy().action_for(table.images.load(0))


def test_codec_restricted_oracle_stays_on_its_codec(photo_dir):
    ladder = Ladder.parse("jpeg:5,15,75;webp:5,50")
    table = OutcomeTable(ImageSet.from_folder(photo_dir), create_backend("local:lite0"), ladder)
    oracle = OraclePolicy("jpeg")
    assert all(ladder[oracle.choose(table, i)].codec == "jpeg" for i in range(len(table)))


@pytest.mark.parametrize("spec", ["fixed:abc", "fixed:150", "greedy", "pretrained:no-such-agent"])
def test_bad_policy_specs_are_clear_errors(spec):
    with pytest.raises(Exception, match=r"(?i)policy|quality|agent"):
        policy_from_spec(spec, DEFAULT_LADDER)
