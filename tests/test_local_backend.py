"""The local backend: a real ImageNet classifier behind the cloud-backend interface."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
from PIL import Image

from adacompress.cloud_backends.base import BadImage
from adacompress.cloud_backends.local import CLASS_NAMES, DEFAULT_VARIANT, LocalBackend
from adacompress.cloud_backends.registry import create_backend
from adacompress.demo_images import _SKIMAGE_PHOTOS
from adacompress.errors import NotAnImage
from adacompress.images import open_image

ACCEPTANCE_TOP1 = 0.85
"""The issue's bar for uncompressed top-1 on real ImageNet photos (lite2 scores ~0.89 on all 1000)."""
LOSSLESS = ("PNG", (("compress_level", 1),))
HEAVY_JPEG = ("JPEG", (("quality", 5),))
DEMO_PHOTO_NAMES = [*_SKIMAGE_PHOTOS, "grace_hopper"]  # the order of demo_photos()


@pytest.fixture(scope="module")
def sample_photos(imagenet_subset: list[tuple[int, Path]]) -> list[tuple[int, Image.Image]]:
    return [(class_index, open_image(path)) for class_index, path in imagenet_subset]


@pytest.fixture(scope="module")
def top1_names(sample_photos, encode_as) -> Callable[[str, tuple], list[str | None]]:
    """`top1_names(variant, (fmt, options))`: each sample photo's top-1 label, computed once."""

    @cache
    def classify(variant: str, encoding: tuple) -> list[str | None]:
        backend = LocalBackend(variant)
        fmt, options = encoding
        return [backend.recognize(encode_as(image, fmt, **dict(options))).top1 for _, image in sample_photos]

    return classify


def _accuracy(sample_photos, predicted: list[str | None]) -> float:
    hits = sum(p == CLASS_NAMES[truth] for p, (truth, _) in zip(predicted, sample_photos, strict=True))
    return hits / len(predicted)


def test_default_variant_is_lite2():
    backend = create_backend("local")
    assert DEFAULT_VARIANT == "lite2"
    assert isinstance(backend, LocalBackend) and backend.name == "local:lite2"
    assert create_backend("local:lite0").name == "local:lite0"


@pytest.mark.parametrize("variant", ["lite2", "lite0"])
def test_uncompressed_imagenet_photos_meet_the_acceptance_bar(sample_photos, top1_names, variant):
    accuracy = _accuracy(sample_photos, top1_names(variant, LOSSLESS))
    assert accuracy >= ACCEPTANCE_TOP1, f"{variant}: top-1 {accuracy:.3f} on {len(sample_photos)} photos"


def test_heavy_compression_degrades_the_answers(sample_photos, top1_names):
    lossless = top1_names(DEFAULT_VARIANT, LOSSLESS)
    heavy = top1_names(DEFAULT_VARIANT, HEAVY_JPEG)
    assert _accuracy(sample_photos, heavy) < _accuracy(sample_photos, lossless)
    assert sum(a != b for a, b in zip(heavy, lossless, strict=True)) >= 2


def test_coffee_is_espresso_and_its_scores_move_with_quality(photos, encode_as):
    backend = LocalBackend()
    clean = backend.recognize(encode_as(photos[1], "PNG"))
    heavy = backend.recognize(encode_as(photos[1], "JPEG", quality=5))
    assert clean.top1 == "espresso"
    clean_scores = dict(zip(clean.names, (lb.score for lb in clean.labels), strict=True))
    heavy_scores = dict(zip(heavy.names, (lb.score for lb in heavy.labels), strict=True))
    assert heavy_scores.get("espresso", 0.0) != pytest.approx(clean_scores["espresso"], abs=1e-3)


@pytest.mark.parametrize("photo_index", range(len(DEMO_PHOTO_NAMES)), ids=DEMO_PHOTO_NAMES)
def test_labels_are_top_five_softmax_scores(photos, encode_as, photo_index):
    answer = LocalBackend("lite0").recognize(encode_as(photos[photo_index], "JPEG", quality=90))
    scores = [label.score for label in answer.labels]
    assert len(answer.labels) == 5
    assert all(0.0 < s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) <= 1.0 + 1e-6
    assert answer.raw["model"] == "lite0"
    assert CLASS_NAMES[answer.raw["top"][0]["class_index"]] in answer.names


@pytest.mark.parametrize("photo_index", range(len(DEMO_PHOTO_NAMES)), ids=DEMO_PHOTO_NAMES)
def test_each_label_is_named_once(photos, encode_as, photo_index):
    # Two pairs of ImageNet classes share a clean name (missile, sunglasses); an API names a label once.
    answer = LocalBackend("lite0", max_labels=20).recognize(encode_as(photos[photo_index], "JPEG"))
    assert len(set(answer.names)) == len(answer.names)
    assert sum(label.score for label in answer.labels) <= 1.0 + 1e-6


@pytest.mark.parametrize("max_labels", [1, 3, 10])
def test_max_labels_limits_the_answer(photos, encode_as, max_labels):
    answer = LocalBackend("lite0", max_labels=max_labels).recognize(encode_as(photos[0], "JPEG"))
    assert len(answer.labels) == max_labels


@pytest.mark.parametrize("min_score", [0.01, 0.05, 0.3])
def test_min_score_filters_low_labels(photos, encode_as, min_score):
    data = encode_as(photos[2], "JPEG", quality=75)  # chelsea: a cat with spread-out scores
    everything = LocalBackend("lite0").recognize(data)
    kept = LocalBackend("lite0", min_score=min_score).recognize(data)
    expected = [label for label in everything.labels if label.score >= min_score]
    assert kept.names == tuple(label.name for label in expected)
    assert all(label.score >= min_score for label in kept.labels)


def test_min_score_one_can_leave_no_labels(photos, encode_as):
    answer = LocalBackend("lite0", min_score=1.0).recognize(encode_as(photos[2], "JPEG"))
    assert answer.labels == () and answer.top1 is None


def test_stats_count_calls_and_bytes(photos, encode_as, lite0_backend):
    uploads = [encode_as(photo, "JPEG", quality=q) for photo, q in zip(photos[:3], (20, 50, 80), strict=True)]
    for data in uploads:
        answer = lite0_backend.recognize(data)
        assert answer.bytes_sent == len(data)
        assert answer.latency_s > 0
    assert lite0_backend.stats.snapshot() == {
        "calls": 3, "bytes_sent": sum(map(len, uploads)), "failures": 0, "cache_hits": 0,
        "cache_unreadable": 0, "sent": 3, "answered": 3, "abandoned": 0, "retries": 0,
    }


@pytest.mark.parametrize("garbage", [b"", b"definitely not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_bad_uploads_raise_bad_image_and_count_a_failure(lite0_backend, garbage):
    with pytest.raises(BadImage):
        lite0_backend.recognize(garbage)
    assert lite0_backend.stats.snapshot() == {
        "calls": 1, "bytes_sent": len(garbage), "failures": 1, "cache_hits": 0,
        "cache_unreadable": 0, "sent": 1, "answered": 0, "abandoned": 0, "retries": 0,
    }


def test_a_failure_does_not_break_later_calls(lite0_backend, photos, encode_as):
    with pytest.raises(NotAnImage):
        lite0_backend.recognize(b"text")
    assert lite0_backend.recognize(encode_as(photos[1], "JPEG")).top1 is not None
    assert (lite0_backend.stats.calls, lite0_backend.stats.failures) == (2, 1)
