"""The per-image memo: one decode, each action encoded once, reduced copies bounded whatever the size."""

from __future__ import annotations

import io

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


def large_jpeg(size: tuple[int, int] = (2000, 1500), **options) -> bytes:
    return encode_bytes(textured(5, (200, 150)).resize(size, Image.Resampling.BICUBIC), "JPEG", quality=90, **options)


def test_a_large_jpeg_is_decoded_at_full_size_only_when_an_action_needs_it():
    data = large_jpeg()
    upload = Upload.of(data)
    assert upload.size == (2000, 1500) and upload.pixels == 3_000_000
    assert WORKING_VIEW_PX <= min(upload.working().size) < 2 * WORKING_VIEW_PX
    capped = upload.encoded(Action("jpeg", 25, 192))
    assert Image.open(io.BytesIO(capped.data)).size == (256, 192)
    assert not upload.full_decoded  # the cap lies under the draft-decoded working copy
    eager = Upload(Image.open(io.BytesIO(data)).convert("RGB"))
    assert capped.info.bytes == pytest.approx(eager.encoded(Action("jpeg", 25, 192)).info.bytes, rel=0.1)
    full = upload.encoded(Action("jpeg", 25))
    assert upload.full_decoded and Image.open(io.BytesIO(full.data)).size == (2000, 1500)
    assert full.data == eager.encoded(Action("jpeg", 25)).data


def test_a_caller_that_needs_full_size_decodes_a_large_jpeg_once():
    data = large_jpeg()
    upload = Upload.of(data, defer_full_decode=False)
    assert upload.full_decoded
    assert upload.working().image.tobytes() == upload.image.reduce(1500 // WORKING_VIEW_PX).tobytes()
    assert upload.encoded(Action("jpeg", 25)).data == Upload.of(data).encoded(Action("jpeg", 25)).data


def test_a_turned_large_jpeg_keeps_its_upright_size():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    upload = Upload.of(large_jpeg(exif=exif.tobytes()))
    assert upload.size == (1500, 2000)
    assert upload.working().size[0] < upload.working().size[1]
    assert Image.open(io.BytesIO(upload.encoded(Action("jpeg", 25, 192)).data)).size == (192, 256)


def test_a_truncated_large_jpeg_is_refused_before_any_decision():
    data = large_jpeg()
    with pytest.raises(TruncatedImage):
        Upload.of(data[: len(data) // 2])
