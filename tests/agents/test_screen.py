"""The early exit: a screen after two of the probe's passes sends the cheapest rung when no dearer rung could win."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adacompress.agents.agent_file import AgentFile, AgentFileError
from adacompress.agents.dqn import dqn_from_agent
from adacompress.agents.policies import LearnedPolicy, load_policy
from adacompress.agents.qnet import NumpyQNetwork
from adacompress.agents.screen import Screen, screen_columns
from adacompress.cloud_backends.local import LocalBackend
from adacompress.cnn import EfficientNetLite
from adacompress.codec import encode
from adacompress.images import ImageSet, list_images
from adacompress.outcomes import OutcomeTable
from adacompress.upload import Upload
from tests.conftest import constant_screen, with_screen


@pytest.fixture(scope="module")
def photos(photo_dir: Path) -> list[Image.Image]:
    return [Image.open(path).convert("RGB") for path in list_images(photo_dir)]


class PassCounter:
    """Counts the images the real surrogate is shown."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.images = 0
        real_run = EfficientNetLite.run

        def counting_run(model: EfficientNetLite, images: list[Image.Image]):
            self.images += len(images)
            return real_run(model, images)

        monkeypatch.setattr(EfficientNetLite, "run", counting_run)


@pytest.mark.parametrize(("probability", "exits"), [(0.99, True), (0.98, False)])
def test_the_exit_bar_is_where_no_dearer_rung_could_pay_back_its_bytes(probability, exits):
    # size weight 0.25, the next rung 0.05 of the reference dearer: a rung that surely keeps the answer gains at most
    # 1 - p in hits and pays 0.25 * 0.05 = 0.0125 in bytes, so the bar sits at p = 0.9875.
    assert Screen.exits(probability, 0.25, (0.17, 0.22)) is exits
    assert not Screen.exits(0.999, 0.0, (0.17, 0.22))  # a dial turned to "accuracy only" never exits


def test_the_two_stage_probe_sees_what_the_whole_probe_sees(trained_agent, photos):
    featurizer = LearnedPolicy(trained_agent).featurizer
    for image in photos[:3]:
        first = featurizer.first_look(Upload(image))
        whole = featurizer.observe(Upload(image))
        np.testing.assert_array_equal(featurizer.observe(Upload(image), first), whole)
        known = ~np.isnan(first.partial)
        assert known.sum() == 10
        np.testing.assert_array_equal(first.partial[known], whole[known])
        assert np.flatnonzero(known).tolist() == screen_columns(featurizer.rungs)


def test_a_sure_screen_sends_the_cheapest_rung_after_two_passes(trained_agent, photos, monkeypatch):
    policy = LearnedPolicy(with_screen(trained_agent, constant_screen(0.999)))
    passes = PassCounter(monkeypatch)
    decision = policy.decide(photos[0])
    assert passes.images == 2  # the photo and the photo at the cheapest rung; the other three are skipped
    assert (decision.rung, decision.observation, decision.exited_early) == (0, None, True)
    assert decision.hit_probability == pytest.approx(0.999)
    assert decision.data == encode(photos[0], trained_agent.ladder[0]).data


def test_the_dial_and_the_quality_floor_close_the_exit(trained_agent, photos, monkeypatch):
    policy = LearnedPolicy(with_screen(trained_agent, constant_screen(0.999)))
    plain = LearnedPolicy(with_screen(trained_agent, None))
    passes = PassCounter(monkeypatch)
    for size_weight, min_rung in [(0.0, 0), (None, 1)]:
        passes.images = 0
        decision = policy.decide(photos[1], size_weight, min_rung)
        expected = plain.decide(photos[1], size_weight, min_rung)
        assert passes.images == 5 + 5  # the screened policy's probe, then the plain one's, each whole
        assert not decision.exited_early
        np.testing.assert_array_equal(decision.observation, expected.observation)
        assert decision.rung == expected.rung >= min_rung


def test_an_unsure_screen_leaves_the_choice_to_the_q_network(trained_agent, photos):
    policy = LearnedPolicy(with_screen(trained_agent, constant_screen(0.5)))
    q_network = NumpyQNetwork(trained_agent)
    for image in photos[:4]:
        decision = policy.decide(image)
        np.testing.assert_array_equal(decision.observation, policy.featurizer.observe(Upload(image)))
        assert decision.rung == int(q_network(decision.observation)[0].argmax())


def test_training_fits_a_screen_that_tells_keepers_from_losers(trained_agent, photo_dir):
    screen = trained_agent.screen()
    assert screen.weight.shape == (len(screen_columns(4)) + 1,)  # None (no screen fitted) fails here too
    # Fitted on the run's own answers at the cheapest rung, it must rank a photo that kept the answer there above one
    # that lost it, on the training photos themselves.
    table = OutcomeTable(ImageSet(list_images(photo_dir)), LocalBackend("lite0"), trained_agent.ladder)
    featurizer = LearnedPolicy(trained_agent).featurizer
    columns = screen_columns(featurizer.rungs)
    scored = [(screen.hit_probability(featurizer.observe(table.upload(i))[columns]), table.outcome(i, 0).hit)
              for i in range(len(table))]
    kept = [p for p, hit in scored if hit]
    lost = [p for p, hit in scored if not hit]
    assert kept and lost
    assert np.mean(kept) > np.mean(lost)


def test_a_screened_agent_round_trips_and_retrains(trained_agent):
    screen = trained_agent.screen()
    again = AgentFile.from_bytes(trained_agent.to_bytes()).screen()
    for name in ("weight", "mean", "scale"):
        np.testing.assert_array_equal(getattr(again, name), getattr(screen, name))
    assert with_screen(trained_agent, None).version != trained_agent.version  # the version covers the screen
    # The SB3 learner loads the Q-network alone (a strict load of the screen's arrays would raise) and agrees with
    # the numpy Q-network that serves.
    model = dqn_from_agent(trained_agent)
    observation = np.linspace(0.0, 1.0, trained_agent.observation_dim, dtype=np.float32)[None]
    with torch.no_grad():
        sb3 = model.q_net(torch.as_tensor(observation)).numpy()
    np.testing.assert_allclose(sb3, NumpyQNetwork(trained_agent)(observation), rtol=1e-5, atol=1e-6)


def test_a_broken_screen_is_refused_when_the_file_is_read(trained_agent):
    broken = with_screen(trained_agent, Screen(np.zeros(5), np.zeros(10), np.ones(10)))
    with pytest.raises(AgentFileError, match="broken screen"):
        AgentFile.from_bytes(broken.to_bytes())


def test_an_agent_file_without_a_screen_decides_as_before(trained_agent, photos):
    plain = load_policy(with_screen(trained_agent, None).to_bytes())
    assert plain.screen is None
    q_network = NumpyQNetwork(trained_agent)
    for image in photos[:3]:
        decision = plain.decide(image)
        assert not decision.exited_early
        np.testing.assert_array_equal(decision.observation, plain.featurizer.observe(Upload(image)))
        assert decision.rung == int(q_network(decision.observation)[0].argmax())
