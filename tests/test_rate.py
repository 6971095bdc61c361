"""Size estimates from the working copy: exact for web-sized photos, close for large ones, bounded work."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from adacompress.codec import DEFAULT_LADDER, REFERENCE_ACTION, Action, encode
from adacompress.rate import estimate_bytes, estimate_ratios
from adacompress.upload import WORKING_VIEW_PX, Upload
from tests.conftest import textured


def test_photos_under_twice_the_working_size_are_estimated_exactly():
    image = textured(4, (900, 600))
    upload = Upload(image)
    for action in (DEFAULT_LADDER[0], REFERENCE_ACTION):
        assert estimate_bytes(upload, action) == encode(image, action).info.bytes
    ratios = estimate_ratios(upload, DEFAULT_LADDER.actions, REFERENCE_ACTION)
    real = [encode(image, a).info.bytes / encode(image, REFERENCE_ACTION).info.bytes for a in DEFAULT_LADDER.actions]
    np.testing.assert_allclose(ratios, real)


def mosaic(photos: list[Image.Image], seed: int, size: tuple[int, int] = (1800, 1200)) -> Image.Image:
    """A large image tiled from real photos at their own resolution (upscaling would make it too smooth)."""
    canvas = Image.new("RGB", size)
    for i, (left, top) in enumerate((x, y) for y in range(0, size[1], 300) for x in range(0, size[0], 300)):
        photo = photos[(seed + i) % len(photos)]
        canvas.paste(photo.crop((0, 0, 300, 300)), (left, top))
    return canvas


def test_large_photo_estimates_are_close_to_the_real_sizes(photos):
    for seed in range(3):
        large = mosaic(photos, seed)
        upload = Upload(large)
        assert upload.working() is not upload  # the estimate really comes from a reduced copy
        real = encode(large, REFERENCE_ACTION).info.bytes
        assert estimate_bytes(upload, REFERENCE_ACTION) == pytest.approx(real, rel=0.2)
        ratios = estimate_ratios(upload, DEFAULT_LADDER.actions, REFERENCE_ACTION)
        assert np.all(np.diff(ratios) > 0)  # higher quality, more bytes
        assert ratios[DEFAULT_LADDER.actions.index(REFERENCE_ACTION)] == pytest.approx(1.0)


def test_the_copy_stays_small_for_large_images():
    upload = Upload(Image.new("RGB", (6000, 4000), (10, 200, 30)))
    estimate_ratios(upload, DEFAULT_LADDER.actions, REFERENCE_ACTION)
    assert WORKING_VIEW_PX <= min(upload.working().image.size) < 2 * WORKING_VIEW_PX


def test_capped_sizes_of_a_large_photo_are_read_off_the_working_copy(photos):
    large = mosaic(photos, 0)
    upload = Upload(large)
    for action in (Action("jpeg", 15, 256), Action("jpeg", 25, 192)):
        real = encode(large, action).info.bytes
        assert estimate_bytes(upload, action) == pytest.approx(real, rel=0.1)
    between = Action("jpeg", 25, 900)  # a cap above the working copy: scaled by pixels
    assert estimate_bytes(upload, between) == pytest.approx(encode(large, between).info.bytes, rel=0.25)
    ratios = estimate_ratios(upload, (Action("jpeg", 25, 192), Action("jpeg", 25, 256), Action("jpeg", 25)),
                             REFERENCE_ACTION)
    assert np.all(np.diff(ratios) > 0)  # more pixels, more bytes
