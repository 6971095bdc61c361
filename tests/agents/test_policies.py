"""`Policy.decide` for every policy kind, the bytes it hands over, and the oracle bound, on real photos."""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adacompress.agents.agent_file import AgentFile, AgentFileError
from adacompress.agents.policies import (
    FixedPolicy,
    LearnedPolicy,
    Policy,
    PolicyError,
    RandomPolicy,
    load_policy,
    policy_from_spec,
)
from adacompress.agents.qnet import NumpyQNetwork
from adacompress.cloud_backends.local import LocalBackend
from adacompress.codec import DEFAULT_LADDER, REFERENCE_ACTION, Action, Ladder, LadderError, codec_available, encode
from adacompress.errors import AdaCompressError, ImageTooLarge, TooManyPixels
from adacompress.evaluation import evaluate_oracle, evaluate_policy, evaluate_spec, oracle_rung
from adacompress.images import ImageSet, list_images
from adacompress.outcomes import OutcomeTable
from adacompress.upload import WORKING_VIEW_PX, Upload
from tests.conftest import encode_bytes


class RecordingBackend(LocalBackend):
    """The real Lite0 backend, keeping every upload it receives."""

    def __init__(self) -> None:
        super().__init__("lite0")
        self.received: list[bytes] = []

    def _recognize(self, image_bytes: bytes):
        self.received.append(image_bytes)
        return super()._recognize(image_bytes)


@pytest.fixture(scope="module")
def paths(photo_dir) -> list[Path]:
    return list_images(photo_dir)


@pytest.fixture(scope="module")
def table(paths) -> OutcomeTable:
    return OutcomeTable(ImageSet(paths), LocalBackend("lite0"), DEFAULT_LADDER)


def original(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def assert_data_is_the_image_at_its_action(data: bytes, image: Image.Image, action: Action) -> None:
    assert data == encode(image, action).data
    with Image.open(io.BytesIO(data)) as sent:
        assert sent.size == image.size
        assert sent.format == {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}[action.codec]



@pytest.mark.parametrize("quality", [5, 45, 95])
def test_fixed_policy_decides_its_action_at_full_size(paths, quality):
    policy = policy_from_spec(f"fixed:{quality}", DEFAULT_LADDER)
    assert isinstance(policy, FixedPolicy)
    for path in paths[:3]:
        decision = policy.decide(path.read_bytes())
        assert decision.action == Action("jpeg", quality) == policy.ladder[decision.rung]
        assert decision.rung == 0 and decision.observation is None
        assert decision.policy_version == f"fixed:{quality}"
        assert decision.bytes == len(decision.data)
        assert_data_is_the_image_at_its_action(decision.data, original(path), decision.action)


def test_a_large_upload_is_decoded_at_once_only_when_every_rung_is_full_size():
    data = encode_bytes(Image.new("RGB", (2000, 1500), (90, 120, 30)), "JPEG", quality=90)
    assert FixedPolicy(Action("jpeg", 25)).upload_of(data).full_decoded
    assert not FixedPolicy(Action("jpeg", 25, 192)).upload_of(data).full_decoded  # may never need the full size


def test_fixed_policy_sends_fewer_bytes_at_lower_quality(paths):
    low, high = (policy_from_spec(f"fixed:{q}", DEFAULT_LADDER).decide(paths[0].read_bytes()) for q in (15, 85))
    assert low.bytes < high.bytes
    assert low.reference_bytes == high.reference_bytes  # the estimate depends on the image, not the policy


def test_reference_bytes_estimate_the_reference_upload(paths):
    policy = FixedPolicy(Action("jpeg", 15))
    for path in paths:
        estimate = policy.decide(path.read_bytes()).reference_bytes
        real = encode(original(path), REFERENCE_ACTION).info.bytes
        assert 0.5 < estimate / real < 2.0, (path.name, estimate, real)


@pytest.mark.skipif(not codec_available("webp"), reason="this Pillow cannot write WebP")
def test_fixed_policy_of_another_codec(paths):
    policy = policy_from_spec("fixed:webp:50", DEFAULT_LADDER)
    decision = policy.decide(paths[1].read_bytes())
    assert decision.action == Action("webp", 50)
    assert decision.policy_version == "fixed:webp:50"
    assert_data_is_the_image_at_its_action(decision.data, original(paths[1]), decision.action)


@pytest.mark.parametrize("name, value, error, match", [
    ("ADACOMPRESS_MAX_SIDE_PX", "300", TooManyPixels, r"is 512x512 px; the limit is 300 px per side"),
    ("ADACOMPRESS_MAX_PIXELS", "100000", TooManyPixels, r"the limit is 100,000 pixels"),
    ("ADACOMPRESS_MAX_UPLOAD_BYTES", "1000", ImageTooLarge, r"the limit is 1,000 bytes"),
])
def test_uploads_are_held_to_the_configured_limits(paths, monkeypatch, name, value, error, match):
    data = paths[0].read_bytes()  # astronaut, 512x512
    assert FixedPolicy(Action("jpeg", 15)).decide(data).bytes > 0
    monkeypatch.setenv(name, value)
    with pytest.raises(error, match=match):
        FixedPolicy(Action("jpeg", 15)).decide(data)



def test_random_policy_is_seeded_and_covers_the_ladder(paths):
    upload = Upload(original(paths[0]))  # one memo: each rung is encoded once over the 200 decisions
    policy, again, other = (RandomPolicy(DEFAULT_LADDER, seed) for seed in (7, 7, 8))
    first = [policy.decide(upload) for _ in range(200)]
    assert [d.rung for d in first] == [again.decide(upload).rung for _ in range(200)]
    assert [d.rung for d in first] != [other.decide(upload).rung for _ in range(200)]
    assert {d.rung for d in first} == set(range(len(DEFAULT_LADDER)))
    for decision in first:
        assert decision.action == DEFAULT_LADDER[decision.rung]
        assert decision.observation is None and decision.policy_version == "random:7"
        assert decision.data == upload.encoded(decision.action).data



def test_learned_policy_from_bytes_decides_by_its_q_network(trained_agent, paths):
    policy = load_policy(trained_agent.to_bytes())
    assert isinstance(policy, LearnedPolicy)
    assert policy.version == hashlib.sha256(trained_agent.weights_npz).hexdigest() == trained_agent.version
    q_network = NumpyQNetwork(AgentFile.from_bytes(trained_agent.to_bytes()))
    asked = 0
    for path in paths:
        image = original(path)
        decision = policy.decide(path.read_bytes())
        assert decision.policy_version == trained_agent.version
        assert_data_is_the_image_at_its_action(decision.data, image, decision.action)
        if decision.exited_early:  # tests/agents/test_screen.py
            assert policy.screen is not None and decision.rung == 0 and decision.observation is None
            continue
        asked += 1
        assert decision.observation.shape == (trained_agent.observation_dim,) == (31,)
        assert decision.observation.dtype == np.float32
        np.testing.assert_array_equal(decision.observation, policy.featurizer.observe(Upload(image)))
        assert decision.rung == int(q_network(decision.observation)[0].argmax())
        assert decision.action == trained_agent.ladder[decision.rung]
    assert asked >= len(paths) // 2


@pytest.mark.parametrize("large", [False, True])
def test_learned_policy_encodes_each_action_at_most_once(trained_agent, paths, monkeypatch, large):
    import adacompress.upload

    image = original(paths[0])  # astronaut, 512x512
    if large:  # big enough that the probe and the size estimates read a reduced working copy
        image = image.resize((4 * WORKING_VIEW_PX, 4 * WORKING_VIEW_PX))
    full_size: Counter[Action] = Counter()
    real_encode = adacompress.upload.encode

    def counting_encode(im: Image.Image, action: Action):
        if im.size == image.size:
            full_size[action] += 1
        return real_encode(im, action)

    monkeypatch.setattr(adacompress.upload, "encode", counting_encode)
    decision = load_policy(trained_agent.to_bytes()).decide(image)
    assert decision.action in full_size and max(full_size.values()) == 1, full_size
    if large:
        assert set(full_size) == {decision.action}  # only the chosen rung is encoded at full size
    assert decision.data == encode(image, decision.action).data


def test_a_featurizer_the_weights_do_not_fit_is_refused(trained_agent):
    mismatched = replace(trained_agent, config=replace(trained_agent.config, featurizer="embedding"))
    with pytest.raises(PolicyError, match="featurizer embedding gives 1280 numbers, the agent expects 31"):
        LearnedPolicy(mismatched)



def _fixed() -> Policy:
    return policy_from_spec("fixed:15", DEFAULT_LADDER)


def _random() -> Policy:
    return RandomPolicy(DEFAULT_LADDER, seed=3)


@pytest.mark.parametrize("make", ["fixed", "random", "learned"])
def test_decision_data_is_exactly_what_the_backend_receives(paths, trained_agent, make):
    factory: Callable[[], Policy] = {"fixed": _fixed, "random": _random,
                                     "learned": lambda: load_policy(trained_agent.to_bytes())}[make]
    backend = RecordingBackend()
    table = OutcomeTable(ImageSet(paths), backend, DEFAULT_LADDER)
    result = evaluate_policy(table, factory())

    replay = factory()  # the same decisions again, each from a fresh decode of the file's bytes
    decisions = [replay.decide(path.read_bytes()) for path in paths]
    expected: list[bytes] = []
    for path, decision in zip(paths, decisions, strict=True):
        reference = encode(original(path), REFERENCE_ACTION).data
        expected += [reference] if decision.action == REFERENCE_ACTION else [reference, decision.data]
    assert backend.received == expected
    assert result.backend_calls == len(expected)
    assert result.mean_bytes == pytest.approx(np.mean([d.bytes for d in decisions]))
    sent, reference_sent = sum(d.bytes for d in decisions), sum(table.reference_bytes(i) for i in range(len(paths)))
    assert result.bytes_vs_reference == pytest.approx(sent / reference_sent)
    assert result.quality_histogram == dict(Counter(d.action.label for d in decisions))
    hits = [table.outcome(i, table.rung_of(d.action)).hit for i, d in enumerate(decisions)]
    assert result.accuracy == pytest.approx(sum(hits) / len(hits))


def test_a_fixed_action_off_the_table_ladder_is_a_clear_error(table):
    with pytest.raises(AdaCompressError, match=r"jpeg:50 is not on this table's ladder jpeg:5,10,15"):
        evaluate_policy(table, FixedPolicy(Action("jpeg", 50)))



def test_oracle_picks_the_cheapest_rung_that_hits(table):
    for i in range(len(table)):
        choice = oracle_rung(table, i)
        assert table.outcome(i, choice).hit
        sizes = table.sizes(i)
        cheaper = [a for a in range(len(DEFAULT_LADDER)) if sizes[a] < sizes[choice]]
        assert not any(table.outcome(i, a).hit for a in cheaper)
    result = evaluate_spec(table, "oracle")
    assert result.policy == "oracle" and result.accuracy == 1.0
    assert result.backend_calls == 0  # every answer was already paid for above
    assert result.bytes_vs_reference == pytest.approx(
        sum(table.sizes(i)[oracle_rung(table, i)] for i in range(len(table)))
        / sum(table.reference_bytes(i) for i in range(len(table))))


def test_codec_restricted_oracle_stays_on_its_codec(paths):
    ladder = Ladder.parse("jpeg:5,15,75;webp:5,50")
    table = OutcomeTable(ImageSet(paths), LocalBackend("lite0"), ladder)
    assert all(ladder[oracle_rung(table, i, "jpeg")].codec == "jpeg" for i in range(len(table)))
    result = evaluate_oracle(table, "jpeg")
    assert result.policy == "oracle:jpeg" and set(result.quality_histogram) <= {"jpeg:5", "jpeg:15", "jpeg:75"}



@pytest.mark.parametrize("spec, error, match", [
    ("fixed:abc", PolicyError, r"policy 'fixed:abc': expected fixed:QUALITY"),
    ("fixed:150", PolicyError, r"quality 150 is outside 1\.\.100"),
    ("fixed:gif:50", PolicyError, r"unknown codec 'gif'"),
    ("greedy", PolicyError, r"unknown policy 'greedy'"),
    ("oracle", PolicyError, r"cannot decide for a new upload"),
    ("pretrained:no-such-agent", AgentFileError, r"no shipped agent named 'no-such-agent'; shipped: .*local-lite2"),
])
def test_bad_policy_specs_are_typed_errors(spec, error, match):
    with pytest.raises(error, match=match) as caught:
        policy_from_spec(spec, DEFAULT_LADDER)
    assert caught.value.code == {PolicyError: "bad_policy", AgentFileError: "bad_agent_file"}[error]


@pytest.mark.parametrize("spec", ["fixed:150", "fixed:gif:50"])
def test_bad_fixed_actions_keep_the_ladder_error_as_cause(spec):
    with pytest.raises(PolicyError) as caught:
        policy_from_spec(spec, DEFAULT_LADDER)
    assert isinstance(caught.value.__cause__, LadderError)
