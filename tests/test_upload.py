"""The per-image memo: one decode, each action encoded once, reduced copies bounded whatever the size."""

from __future__ import annotations

import pytest
from PIL import Image

from adacompress.codec import Action, encode
from adacompress.errors import CorruptImage, NotAnImage, TruncatedImage
from adacompress.upload import WORKING_VIEW_PX, Upload
from tests.conftest import encode_bytes, textured


def test_each_action_is_encoded_once_and_matches_a_fresh_encode():
    image = textured(1, (300, 200))
    upload = Upload(image)
    first = upload.encoded(Action("jpeg", 15))
    assert upload.encoded(Action("jpeg", 15)) is first
    assert first.data == encode(image, Action("jpeg", 15)).data


@pytest.mark.parametrize(("size", "short_side", "expected"), [
    ((1000, 800), 320, (500, 400)),
    ((4000, 3000), 320, (445, 334)),  # Pillow keeps the partial edge block
    ((639, 480), 320, (639, 480)),
])
def test_reduced_copies_use_the_largest_factor_that_keeps_the_short_side(size, short_side, expected):
    upload = Upload(Image.new("RGB", size, (90, 120, 30)))
    reduced = upload.reduced(short_side)
    assert reduced.image.size == expected
    assert upload.reduced(short_side) is reduced
    assert min(reduced.image.size) >= short_side


def test_a_small_photo_is_its_own_working_copy_so_probe_encodings_are_the_upload():
    upload = Upload(textured(2, (500, 375)))
    assert upload.working() is upload
    big = Upload(Image.new("RGB", (4000, 3000)))
    assert WORKING_VIEW_PX <= min(big.working().image.size) < 2 * WORKING_VIEW_PX


def test_bytes_are_decoded_safely_with_typed_errors():
    data = encode_bytes(textured(3), "JPEG", quality=80)
    assert Upload.of(data).image.size == (128, 96)
    with pytest.raises(NotAnImage):
        Upload.of(b"this is not an image")
    with pytest.raises((TruncatedImage, CorruptImage)):
        Upload.of(data[: len(data) // 2])
    with pytest.raises(TypeError, match="bytes, a PIL image or an Upload"):
        Upload.of(42)


def test_non_rgb_images_become_rgb():
    assert Upload(Image.new("L", (40, 30), 128)).image.mode == "RGB"


def test_capped_actions_share_one_downscaled_copy_per_cap():
    upload = Upload(textured(1, (800, 600)))
    first = upload.encoded(Action("jpeg", 10, 300))
    assert upload.capped(Action("jpeg", 25, 300)) is upload.capped(Action("jpeg", 10, 300))
    assert upload.capped(Action("jpeg", 25, 300)).size == (400, 300)
    assert upload.capped(Action("jpeg", 25, 900)) is upload.image
    assert first.data == encode(upload.image, Action("jpeg", 10, 300)).data
