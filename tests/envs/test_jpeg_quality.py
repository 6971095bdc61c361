"""The Gymnasium env: API conformance, reward bookkeeping, paid-once answers and seeded image order."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from adacompress.cloud_backends.limits import REKOGNITION_LIMITS
from adacompress.cloud_backends.local import LocalBackend
from adacompress.codec import DEFAULT_LADDER, REFERENCE_ACTION, Ladder, LadderError, encode
from adacompress.envs import JpegQualityEnv
from adacompress.scoring import Scoring

REFERENCE_INDEX = DEFAULT_LADDER.actions.index(REFERENCE_ACTION)


@pytest.fixture
def env(generated_images) -> JpegQualityEnv:
    return JpegQualityEnv(generated_images, backend="local:lite0")


def served(env: JpegQualityEnv, resets: int, seed: int | None = None) -> list[str]:
    """Names of the images served by `resets` resets, the first one seeded."""
    names = [env.reset(seed=seed)[1]["image"]]
    names += [env.reset()[1]["image"] for _ in range(resets - 1)]
    return names


@pytest.mark.parametrize("source", ["generated", "photos"])
def test_passes_gymnasium_and_sb3_env_checkers(generated_images, photos, source):
    images = generated_images[:3] if source == "generated" else photos[:3]
    env = JpegQualityEnv(images, backend="local:lite0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gymnasium_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)


def test_gymnasium_make(generated_images):
    env = gymnasium.make("adacompress/JpegQuality-v0", images=generated_images, backend="local:lite0")
    assert env.spec.id == "adacompress/JpegQuality-v0"
    assert isinstance(env.unwrapped, JpegQualityEnv)
    observation, info = env.reset(seed=3)
    assert env.observation_space.contains(observation)
    _, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert terminated and not truncated
    assert reward == pytest.approx(info["hit"] - info["bytes"] / info["reference_bytes"])
    env.close()


def test_spaces_follow_the_ladder_and_the_featurizer(generated_images):
    env = JpegQualityEnv(generated_images, backend="local:lite0", ladder=Ladder.parse("jpeg:10,50,90"))
    assert env.action_space == gymnasium.spaces.Discrete(3)
    assert env.observation_space.shape == (env.featurizer.dim,)
    assert env.observation_space.dtype == np.float32


@pytest.mark.parametrize("action", range(len(DEFAULT_LADDER)))
def test_reward_is_hit_minus_relative_bytes(env, generated_images, action):
    observation, _ = env.reset(options={"index": 2})
    after, reward, terminated, truncated, info = env.step(action)
    image = generated_images[2]
    assert info["image"] == env.table.images.name(2)
    assert info["action"] == DEFAULT_LADDER[action].label
    assert info["bytes"] == len(encode(image, DEFAULT_LADDER[action]).data)
    assert info["reference_bytes"] == len(encode(image, REFERENCE_ACTION).data)
    assert reward == pytest.approx(float(info["hit"]) - info["bytes"] / info["reference_bytes"])
    assert (terminated, truncated) == (True, False)
    assert np.array_equal(after, observation)


def test_the_reference_rung_always_hits(env):
    for index in range(len(env.table)):
        env.reset(options={"index": index})
        _, reward, _, _, info = env.step(REFERENCE_INDEX)
        assert info["hit"] is True
        assert info["bytes"] == info["reference_bytes"]
        assert reward == pytest.approx(0.0)


def test_scoring_weights_reach_the_reward(generated_images):
    env = JpegQualityEnv(generated_images, backend="local:lite0", scoring=Scoring(alpha=2.0, beta=0.5))
    env.reset(options={"index": 0})
    _, reward, _, _, info = env.step(4)
    assert reward == pytest.approx(2.0 * info["hit"] - 0.5 * info["bytes"] / info["reference_bytes"])


def test_bytes_grow_along_the_ladder(env):
    env.reset(options={"index": 1})
    sizes = [env.step(a)[4]["bytes"] for a in range(len(DEFAULT_LADDER))]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)


def test_observation_is_the_embedding_of_the_original(env, generated_images, featurizer):
    observation, _ = env.reset(options={"index": 3})
    np.testing.assert_allclose(observation, featurizer.embed(generated_images[3]), rtol=1e-5, atol=1e-5)
    observation[:] = -1  # the caller's copy: the env's cached features are untouched
    assert np.all(env.reset(options={"index": 3})[0] >= 0)


def test_each_episode_is_one_step(env):
    for seed in range(3):
        env.reset(seed=seed)
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert terminated is True and truncated is False


def test_backend_answers_are_paid_once_per_image_and_action(generated_images):
    backend = LocalBackend("lite0")
    env = JpegQualityEnv(generated_images, backend=backend)
    env.reset(options={"index": 0})
    env.step(2)
    assert backend.stats.calls == 2  # the reference and the q=25 upload
    first = env.step(2)
    env.reset(options={"index": 0})
    second = env.step(2)
    assert backend.stats.calls == 2
    assert first[1] == second[1] and first[4] == second[4]
    env.step(5)
    assert backend.stats.calls == 3  # a new rung of the same image: its reference is already known
    env.reset(options={"index": 1})
    env.step(REFERENCE_INDEX)
    assert backend.stats.calls == 4  # the reference rung is the reference upload itself
    uploads = [(0, DEFAULT_LADDER[2]), (0, DEFAULT_LADDER[5]), (0, REFERENCE_ACTION), (1, REFERENCE_ACTION)]
    assert backend.stats.bytes_sent == sum(len(encode(generated_images[i], a).data) for i, a in uploads)


def test_step_before_reset_and_bad_actions_are_refused(env):
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.step(0)
    env.reset(seed=0)
    for action in (-1, len(DEFAULT_LADDER), 2.5):
        with pytest.raises(ValueError, match="not in"):
            env.step(action)


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_seeded_resets_repeat_the_image_order(generated_images, seed):
    first = served(JpegQualityEnv(generated_images, backend="local:lite0"), 10, seed)
    second = served(JpegQualityEnv(generated_images, backend="local:lite0"), 10, seed)
    assert first == second
    env = JpegQualityEnv(generated_images, backend="local:lite0")
    served(env, 3, seed=99)
    assert served(env, 10, seed) == first  # reseeding restarts the order mid-way


def test_different_seeds_shuffle_differently(env):
    orders = {tuple(served(env, 5, seed)) for seed in range(6)}
    assert len(orders) > 1


@pytest.mark.parametrize("seed", [0, 7])
def test_every_image_is_served_once_before_any_repeats(env, seed):
    n = len(env.table)
    names = served(env, 3 * n, seed)
    everything = {env.table.images.name(i) for i in range(n)}
    for start in range(0, 3 * n, n):
        assert set(names[start:start + n]) == everything


def test_unshuffled_env_serves_in_order(generated_images):
    env = JpegQualityEnv(generated_images, backend="local:lite0", shuffle=False)
    assert served(env, 7, seed=5) == [f"image-{i % 5}" for i in range(7)]


def test_reset_can_pick_an_image(env):
    for index in (4, 0, 7):
        assert env.reset(options={"index": index})[1]["image"] == env.table.images.name(index % 5)


@pytest.mark.parametrize("as_type", [str, lambda p: p])
def test_images_from_a_folder_or_paths(image_folder, as_type):
    from_folder = JpegQualityEnv(as_type(image_folder), backend="local:lite0", shuffle=False)
    paths = sorted(image_folder.iterdir())
    from_paths = JpegQualityEnv([str(p) for p in paths], backend="local:lite0", shuffle=False)
    names = [p.name for p in paths]
    assert served(from_folder, len(names)) == names
    assert served(from_paths, len(names)) == names


def test_size_capped_rungs_are_actions_like_any_other(photos):
    env = JpegQualityEnv(photos[:2], backend="local:lite0", ladder=Ladder.parse("jpeg:25;jpeg:25@96"))
    env.reset(options={"index": 0})
    _, _, _, _, full = env.step(0)
    _, _, _, _, capped = env.step(1)
    assert capped["action"] == "jpeg:25@96"
    assert capped["bytes"] < full["bytes"] / 4


def test_a_ladder_the_backend_cannot_take_is_refused_before_any_upload(generated_images):
    backend = LocalBackend("lite0")
    backend.limits = REKOGNITION_LIMITS  # the local CNN behind Rekognition's rules
    with pytest.raises(LadderError, match="jpeg:25@48 cannot go to local:lite0: its short side must be at least 80"):
        JpegQualityEnv(generated_images, backend=backend, ladder=Ladder.parse("jpeg:10,25;jpeg:25@48"))
    assert backend.stats.calls == 0
