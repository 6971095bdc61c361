"""Training end to end on real photos with the real CNN backend: budget, search, resume, card."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from adacompress.agents.agent_file import AgentFile
from adacompress.agents.policies import LearnedPolicy
from adacompress.agents.pretrained import file_sha256
from adacompress.cli import main
from adacompress.cloud_backends.registry import create_backend
from adacompress.codec import DEFAULT_LADDER, Ladder
from adacompress.features import DEFAULT_FEATURIZER
from adacompress.images import AugmentedImageSet, ImageSet
from adacompress.outcomes import OutcomeTable

BACKEND = "local:lite0"
CAPPED_LADDER = Ladder.parse("jpeg:5,10,15,25,35,45,55,65,75,85,95;jpeg:5,10,15,25,35,45@256;jpeg:5,10,15,25,35@192;"
                             "jpeg:10,15,25@128")


def test_monotone_search_infers_every_rung_with_few_calls(photo_dir):
    images = ImageSet.from_folder(photo_dir)
    searched = OutcomeTable(images, create_backend(BACKEND), DEFAULT_LADDER, monotone=True)
    exhaustive = OutcomeTable(images, create_backend(BACKEND), DEFAULT_LADDER)
    agree = total = 0
    for i in range(len(images)):
        inferred, real = searched.hits(i), exhaustive.hits(i)
        lowest_real = real.index(True)
        assert inferred[lowest_real] and not any(inferred[:lowest_real])  # the boundary is found exactly
        agree += sum(a == b for a, b in zip(inferred, real, strict=True))
        total += len(real)
    assert searched.backend.stats.calls <= len(images) * 5  # reference + galloping search, not 11 per image
    assert exhaustive.backend.stats.calls == len(images) * len(DEFAULT_LADDER)  # the reference rung is reused
    assert agree / total >= 0.9


def test_the_search_over_size_caps_agrees_with_every_upload(photo_dir):
    images = ImageSet.from_folder(photo_dir)
    searched = OutcomeTable(images, create_backend("local:lite0"), CAPPED_LADDER, monotone=True)
    exhaustive = OutcomeTable(images, create_backend("local:lite0"), CAPPED_LADDER)
    agree = total = 0
    for i in range(len(images)):
        inferred, real = searched.hits(i), exhaustive.hits(i)
        agree += sum(a == b for a, b in zip(inferred, real, strict=True))
        total += len(real)
    assert searched.backend.stats.calls <= len(images) * 9  # not 25 per image
    assert agree / total >= 0.9


def test_train_end_to_end_respects_the_budget_and_resumes(tmp_path, photo_dir, capsys):
    out = tmp_path / "agent.zip"
    args = ["train", "--backend", BACKEND, "--images", str(photo_dir), "--out", str(out), "--no-progress",
            "--net-arch", "16", "--checkpoint-every", "10", "--seed", "1"]
    assert main([*args, "--steps", "24", "--max-calls", "200"]) == 0
    state = json.loads(out.with_suffix(".state.json").read_text())
    assert state["steps"] == 24
    assert len(state["resolved"]) == 8
    first_calls = state["backend_calls"]
    assert 8 < first_calls <= 200
    assert "backend calls" in capsys.readouterr().out
    agent = AgentFile.read(out)
    assert agent.metadata["training"]["backend"] == BACKEND

    assert main([*args, "--steps", "40", "--max-calls", "200", "--resume"]) == 0
    state = json.loads(out.with_suffix(".state.json").read_text())
    assert state["steps"] == 40
    assert state["backend_calls"] == first_calls  # resolved images cost nothing on resume


def test_training_stops_before_the_call_budget(tmp_path, photo_dir, capsys):
    out = tmp_path / "agent.zip"
    assert main(["train", "--backend", BACKEND, "--images", str(photo_dir), "--out", str(out), "--no-progress",
                 "--steps", "500", "--max-calls", "25", "--net-arch", "16"]) == 0
    state = json.loads(out.with_suffix(".state.json").read_text())
    assert state["backend_calls"] <= 25
    assert state["steps"] < 500
    assert "stopped by the call budget" in capsys.readouterr().out


def test_trained_agent_writes_a_model_card_with_heldout_metrics(tmp_path, photo_dir):
    out = tmp_path / "agent.zip"
    assert main(["train", "--backend", BACKEND, "--images", str(photo_dir), "--subset", "even", "--heldout", "odd",
                 "--out", str(out), "--no-progress", "--steps", "16", "--net-arch", "16", "--views", "1"]) == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["backend"] == BACKEND and card["ladder"] == DEFAULT_LADDER.spec
    assert card["training"]["image_count"] == 8  # 4 even-indexed photos and one view of each
    # the card pins the file (pretrained loading refuses anything else) and names the policy it holds
    agent = AgentFile.read(out)
    assert card["agent_sha256"] == file_sha256(out) and card["version"] == agent.version

    # The held-out metrics, recomputed decision by decision on the odd-indexed photos only.
    heldout = ImageSet.from_folder(photo_dir).subset([1, 3, 5, 7])
    table = OutcomeTable(heldout, create_backend(BACKEND), DEFAULT_LADDER)
    policy = LearnedPolicy(agent)
    decisions = [policy.decide(table.upload(i)) for i in range(len(table))]
    hits = [table.outcome(i, decision.rung).hit for i, decision in enumerate(decisions)]
    sent = sum(decision.bytes for decision in decisions)
    reference = sum(table.reference_bytes(i) for i in range(len(table)))
    assert card["heldout"]["subset"] == "odd" and card["heldout"]["images"] == 4
    assert card["heldout"]["policy"] == "agent:agent"
    assert card["heldout"]["accuracy"] == sum(hits) / 4
    assert card["heldout"]["bytes_vs_reference"] == pytest.approx(sent / reference)
    assert card["heldout"]["quality_histogram"] == dict(Counter(decision.action.label for decision in decisions))


def test_augmented_views_are_distinct_and_deterministic(photo_dir):
    base = ImageSet.from_folder(photo_dir)
    views = AugmentedImageSet(base, views=2, seed=5)
    assert len(views) == 3 * len(base)
    assert views.name(0) == base.name(0) and views.name(1).endswith("#view1")
    first, again = views.load(1), AugmentedImageSet(base, views=2, seed=5).load(1)
    assert first.tobytes() == again.tobytes()
    assert first.size != base.load(0).size


@pytest.mark.parametrize("featurizer,head", [("embedding", "known-cost")])
def test_known_cost_head_needs_the_probe(tmp_path, photo_dir, featurizer, head, capsys):
    code = main(["train", "--backend", BACKEND, "--images", str(photo_dir), "--out", str(tmp_path / "a.zip"),
                 "--no-progress", "--steps", "4", "--featurizer", featurizer, "--head", head])
    assert code == 1
    err = capsys.readouterr().err
    assert "error [bad_agent_config]" in err and f"not {featurizer!r}" in err
    assert f"such as {DEFAULT_FEATURIZER!r}, or the mlp head" in err  # what to do instead
    assert len(err.strip().splitlines()) == 1
