"""The agent's view of an image: EfficientNet-Lite0's pooled embedding of the original."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from adacompress.cnn import FEATURE_DIM, shared_model
from adacompress.envs import JpegQualityEnv
from adacompress.features import Featurizer
from adacompress.upload import Upload


@pytest.fixture(scope="module")
def observation_space(photos):
    """The env's observation Box, which every embedding must fall inside."""
    return JpegQualityEnv(photos[:1], backend="local:lite0").observation_space


@pytest.mark.parametrize("photo_index", range(9))
def test_embedding_is_a_1280_float32_vector_inside_the_observation_box(featurizer, observation_space,
                                                                       photos, photo_index):
    embedding = featurizer.embed(photos[photo_index])
    assert embedding.shape == (FEATURE_DIM,) == (featurizer.dim,) == observation_space.shape
    assert embedding.dtype == np.float32
    assert observation_space.contains(embedding)
    assert np.count_nonzero(embedding) > FEATURE_DIM // 4  # a real activation pattern, not a constant


def test_generated_images_stay_inside_the_box(featurizer, observation_space, generated_images,
                                              textured_image):
    extremes = [textured_image.point(lambda v: 255), textured_image.point(lambda v: 0)]
    for image in [*generated_images, *extremes]:
        assert observation_space.contains(featurizer.embed(image))


def test_embedding_is_deterministic(featurizer, photos):
    assert np.array_equal(featurizer.embed(photos[2]), featurizer.embed(photos[2].copy()))


def test_a_fresh_featurizer_agrees(featurizer, photos):
    assert np.array_equal(Featurizer().embed(photos[0]), featurizer.embed(photos[0]))


def test_different_images_embed_differently(featurizer, photos):
    embeddings = [featurizer.embed(photo) for photo in photos]
    for i in range(len(photos)):
        for j in range(i + 1, len(photos)):
            assert not np.allclose(embeddings[i], embeddings[j], atol=1e-2), (i, j)


def test_similar_images_embed_closer_than_different_ones(featurizer, photos):
    coffee, cat = photos[1], photos[2]
    coffee_crop = coffee.crop((10, 10, coffee.width - 10, coffee.height - 10))
    a, b, c = (featurizer.embed(image) for image in (coffee, coffee_crop, cat))
    assert np.linalg.norm(a - b) < np.linalg.norm(a - c)


def test_observe_reads_the_upload_and_embed_wraps_it(featurizer, photos):
    upload = Upload(photos[3])
    observation = featurizer.observe(upload)
    assert observation.shape == (FEATURE_DIM,) and observation.dtype == np.float32
    np.testing.assert_array_equal(observation, featurizer.embed(photos[3]))
    np.testing.assert_array_equal(featurizer.observe(upload), observation)  # a second look costs nothing new


def test_a_large_upload_is_embedded_from_its_reduced_view(featurizer, photos):
    """What the embedding costs is flat in megapixels: a 3x upscale is seen through a 3x box reduction."""
    photo = photos[1].resize((300, 250))  # short side 250: 3x is 750 px, and 750 // 224 = 3
    large = photo.resize((900, 750), Image.Resampling.NEAREST)
    assert large.reduce(3).tobytes() == photo.tobytes()
    np.testing.assert_array_equal(featurizer.embed(large), featurizer.embed(photo))
    full_size, _ = shared_model("lite0").run([large])  # what an embedding of the full upload would be
    assert not np.allclose(featurizer.embed(large), full_size[0], atol=1e-3)


def test_embedding_is_lite0_pooled_features_not_the_backend_model(featurizer, photos):
    assert featurizer.variant == "lite0"
    features, _ = shared_model("lite0").run([photos[1]])
    np.testing.assert_allclose(featurizer.embed(photos[1]), features[0], rtol=1e-5, atol=1e-5)
    lite2_features, _ = shared_model("lite2").run([photos[1]])
    assert not np.allclose(lite2_features[0], features[0], atol=1e-2)
