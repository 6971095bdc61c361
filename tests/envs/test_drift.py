"""Scene-drift transforms: size and mode kept, seeded determinism, severity order, typed errors, no RNG leak."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from adacompress.codec import Action, encode
from adacompress.demo_images import demo_photos
from adacompress.envs.drift import (
    SEVERITIES,
    TRANSFORMS,
    DriftError,
    SceneTransform,
    make_transform,
    parse_transform,
)
from adacompress.errors import AdaCompressError
from adacompress.images import ImageSet

RANDOM = ("night", "fog", "rain", "snow", "noise")
"""Transforms that draw noise, so the image index must change their output."""
FIXED = ("none", "contrast", "blur", "jpeg-source")


def scene(seed: int = 0, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """Stripes, a colour ramp and fine noise: edges for blur to erase, detail for JPEG to drop."""
    width, height = size
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    stripes = 60 * np.sign(np.sin(xs / 3.0 + ys / 7.0))[..., None]
    ramp = np.stack([xs / width, ys / height, 1 - xs / width], axis=-1) * 120 + 60
    pixels = ramp + stripes + rng.normal(0, 10, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def high_frequency_energy(image: Image.Image) -> float:
    """Mean squared difference between neighbouring pixels: what blur removes first."""
    x = pixels(image)
    return float(np.mean(np.diff(x, axis=0) ** 2) + np.mean(np.diff(x, axis=1) ** 2))


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return demo_photos()[1]


def test_names_and_severities_are_the_published_interface():
    assert TRANSFORMS == ("none", "night", "fog", "rain", "snow", "contrast", "blur", "noise", "jpeg-source")
    assert SEVERITIES == range(1, 6)
    assert set(RANDOM) | set(FIXED) == set(TRANSFORMS)


@pytest.mark.parametrize("severity", [1, 5])
@pytest.mark.parametrize("name", TRANSFORMS)
def test_output_is_rgb_uint8_same_size_and_reproducible(name, severity):
    image = scene()
    out = make_transform(name, severity, seed=7)(image, index=3)
    assert out.mode == "RGB"
    assert out.size == image.size
    assert np.asarray(out).dtype == np.uint8
    again = SceneTransform(name, severity, seed=7)(scene(), index=3)
    assert again.tobytes() == out.tobytes()


@pytest.mark.parametrize("name", RANDOM)
def test_random_transforms_draw_new_noise_per_index_and_seed(name):
    image = scene()
    transform = make_transform(name, 3, seed=1)
    first = transform(image, 0).tobytes()
    assert transform(image, 1).tobytes() != first
    assert make_transform(name, 3, seed=2)(image, 0).tobytes() != first


@pytest.mark.parametrize("name", FIXED)
def test_fixed_transforms_ignore_index_and_seed(name):
    image = scene()
    first = make_transform(name, 3, seed=1)(image, 0).tobytes()
    assert make_transform(name, 3, seed=2)(image, 9).tobytes() == first


@pytest.mark.parametrize("name", [n for n in TRANSFORMS if n != "none"])
def test_every_transform_changes_the_image(name):
    image = scene()
    assert make_transform(name, 1)(image).tobytes() != image.tobytes()


def test_none_is_the_identity_and_other_modes_come_out_rgb():
    image = scene()
    assert parse_transform("none")(image, 4).tobytes() == image.tobytes()
    grey = image.convert("L")
    out = make_transform("none", 1)(grey)
    assert out.mode == "RGB"
    assert out.tobytes() == grey.convert("RGB").tobytes()
    assert make_transform("night", 2)(grey).mode == "RGB"


def severity_series(name: str, image: Image.Image, measure) -> list[float]:
    return [measure(make_transform(name, severity, seed=3)(image, 5)) for severity in SEVERITIES]


def strictly_falling(values: list[float]) -> bool:
    return all(a > b for a, b in zip(values, values[1:], strict=False))


@pytest.mark.parametrize("source", ["scene", "photo"])
def test_night_gets_darker_and_bluer_with_severity(source, photo):
    image = scene() if source == "scene" else photo
    brightness = severity_series("night", image, lambda im: pixels(im).mean())
    assert strictly_falling(brightness)
    assert brightness[0] < pixels(image).mean()
    grey = pixels(make_transform("night", 3)(Image.new("RGB", (64, 48), (150, 150, 150))))
    assert grey[..., 2].mean() > grey[..., 1].mean() > grey[..., 0].mean()


@pytest.mark.parametrize("source", ["scene", "photo"])
def test_blur_removes_more_high_frequency_energy_with_severity(source, photo):
    image = scene() if source == "scene" else photo
    energy = severity_series("blur", image, high_frequency_energy)
    assert strictly_falling(energy)
    assert energy[0] < high_frequency_energy(image)


@pytest.mark.parametrize("source", ["scene", "photo"])
def test_jpeg_source_leaves_less_to_encode_with_severity(source, photo):
    image = scene() if source == "scene" else photo

    def png_bytes(im: Image.Image) -> float:
        buffer = io.BytesIO()
        im.save(buffer, format="PNG")
        return len(buffer.getvalue())

    assert strictly_falling(severity_series("jpeg-source", image, png_bytes))
    high_quality = severity_series("jpeg-source", image, lambda im: len(encode(im, Action("jpeg", 90)).data))
    assert strictly_falling(high_quality)


def test_contrast_falls_with_severity():
    assert strictly_falling(severity_series("contrast", scene(), lambda im: pixels(im).std()))


def test_noise_strays_further_from_the_image_with_severity():
    image = scene()
    deviation = severity_series("noise", image, lambda im: np.abs(pixels(im) - pixels(image)).mean())
    assert all(a < b for a, b in zip(deviation, deviation[1:], strict=False))


def test_rain_adds_more_streaks_with_severity():
    flat = Image.new("RGB", (200, 150), (60, 60, 60))

    def streak_pixels(im: Image.Image) -> float:
        """Pixels above the rain-dimmed background, which stays the darkest value of a flat image."""
        grey = pixels(im).mean(axis=-1)
        return float((grey > grey.min() + 3).sum())

    coverage = severity_series("rain", flat, streak_pixels)
    assert coverage[0] > 0
    assert all(a < b for a, b in zip(coverage, coverage[1:], strict=False))


def test_fog_veils_the_scene_and_keeps_less_of_it_at_severity_5(photo):
    original = pixels(photo.convert("L"))

    def kept_signal(im: Image.Image) -> float:
        """Slope of the fogged pixels on the original ones: fog mixes the scene with a haze it does not follow."""
        out = pixels(im.convert("L"))
        return float(np.cov(out.ravel(), original.ravel())[0, 1] / original.var())

    fogged = [make_transform("fog", s, seed=4)(photo, 2) for s in SEVERITIES]
    assert all(pixels(im.convert("L")).std() < original.std() for im in fogged)
    assert kept_signal(fogged[-1]) < kept_signal(fogged[0]) < 0.9


def test_snow_whitens_the_scene_more_at_severity_5(photo):
    brightness = severity_series("snow", photo, lambda im: pixels(im).mean())
    assert min(brightness) > pixels(photo).mean()
    assert brightness[-1] > brightness[0]


@pytest.mark.parametrize("name", TRANSFORMS)
def test_global_numpy_rng_is_left_as_it_was(name):
    np.random.seed(1234)
    expected = np.random.random(3)
    np.random.seed(1234)
    make_transform(name, 4, seed=9)(scene(), 2)
    assert np.array_equal(np.random.random(3), expected)


def test_global_numpy_rng_does_not_change_the_result():
    image = scene()
    np.random.seed(1)
    first = make_transform("snow", 3)(image).tobytes()
    np.random.seed(2)
    assert make_transform("snow", 3)(image).tobytes() == first


@pytest.mark.parametrize("size", [(1, 1), (8, 5), (33, 17), (257, 31)])
@pytest.mark.parametrize("name", TRANSFORMS)
def test_small_and_odd_sizes_keep_their_size(name, size):
    out = make_transform(name, 5)(scene(size=size))
    assert out.size == size
    assert out.mode == "RGB"


@pytest.mark.parametrize("make", [
    lambda: make_transform("nite", 3),
    lambda: SceneTransform("Night", 3),
    lambda: parse_transform("hail:2"),
])
def test_unknown_names_raise_drift_error_listing_the_known_ones(make):
    with pytest.raises(DriftError) as caught:
        make()
    assert isinstance(caught.value, AdaCompressError) and isinstance(caught.value, ValueError)
    assert caught.value.code == "bad_drift"
    for name in TRANSFORMS:
        assert name in str(caught.value)


@pytest.mark.parametrize("severity", [0, 6, -1, True, 2.5, "3"])
def test_severities_outside_1_to_5_raise_drift_error(severity):
    with pytest.raises(DriftError, match=r"1\.\.5"):
        make_transform("fog", severity)


@pytest.mark.parametrize("spec", ["night", "night:", "night:x", "night:9", "fog:3.0"])
def test_malformed_specs_raise_drift_error(spec):
    with pytest.raises(DriftError, match="night|fog"):
        parse_transform(spec)


@pytest.mark.parametrize("bad", [{"seed": -1}, {"index": -1}])
def test_negative_seed_or_index_raise_drift_error(bad):
    with pytest.raises(DriftError, match="non-negative"):
        make_transform("noise", 2, seed=bad.get("seed", 0))(scene(), bad.get("index", 0))


@pytest.mark.parametrize("name", TRANSFORMS)
def test_labels_round_trip_through_parse(name):
    transform = make_transform(name, 1 if name == "none" else 4, seed=5)
    assert transform.label == ("none" if name == "none" else f"{name}:4")
    assert parse_transform(transform.label, seed=5) == transform


def test_parse_accepts_case_and_spaces():
    assert parse_transform(" Fog:2 ", seed=3) == SceneTransform("fog", 2, 3)
    assert parse_transform("jpeg-source:5").label == "jpeg-source:5"


def test_plugs_into_image_set(photo):
    transform = make_transform("night", 3, seed=2)
    images = [scene(), photo]
    dataset = ImageSet(images, transform=transform)
    assert dataset.load(0).tobytes() == transform(images[0]).tobytes()
    assert dataset.load(1).size == photo.size
    assert dataset.subset([1]).transform is transform
