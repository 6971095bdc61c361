"""Safe decoding of untrusted bytes (typed errors naming the limit), modes, EXIF, folders and image sets."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adacompress.config import DEFAULT_MAX_PIXELS
from adacompress.errors import (
    AdaCompressError,
    BadImage,
    CorruptImage,
    ImageTooLarge,
    NotAnImage,
    TooManyPixels,
    TruncatedImage,
)
from adacompress.images import DecodeLimits, ImageSet, decode, iter_images, list_images

# --- crafted files -------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_declaring(width: int, height: int, idat: bytes = b"", bit_depth: int = 8, colour: int = 2) -> bytes:
    """A PNG whose header claims width x height; the pixel data is whatever `idat` holds."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return PNG_SIGNATURE + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of zeros: a few KB that would decode to width*height pixels."""
    row = b"\x00" * (1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return png_declaring(width, height, idat, bit_depth=1, colour=0)


def jpeg_declaring(jpeg: bytes, width: int, height: int) -> bytes:
    """The same JPEG with its frame header (SOF0) rewritten to claim width x height."""
    sof = jpeg.index(b"\xff\xc0")
    return jpeg[: sof + 5] + struct.pack(">HH", height, width) + jpeg[sof + 9:]


def replace_png_chunk(png: bytes, kind: bytes, payload: bytes) -> bytes:
    """Swap one chunk's payload (with a valid CRC), so only the content is wrong."""
    out, pos = [png[:8]], 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        name, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
        out.append(png_chunk(name, payload if name == kind else data))
        pos += 12 + length
    return b"".join(out)


def zero_after(data: bytes, marker: bytes, count: int) -> bytes:
    """Overwrite `count` bytes after the first `marker` with zeros (e.g. a JPEG's scan header)."""
    start = data.index(marker) + len(marker)
    return data[:start] + b"\x00" * count + data[start + count:]


JUNK = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()


# --- bad images ----------------------------------------------------------------------------------

@pytest.mark.parametrize("data, named", [
    (b"", "empty"),
    (b"hello, this is a plain text file\n" * 3, "99 bytes are not an image"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "not an image"),
    (b"<!DOCTYPE html><html><body>404</body></html>", "not an image"),
    (b"\x00" * 512, "512 bytes are not an image"),
], ids=["empty", "text", "pdf", "html", "zeros"])
def test_non_images_are_not_an_image(data, named):
    with pytest.raises(NotAnImage, match=named):
        decode(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP", "TIFF"])
@pytest.mark.parametrize("kept", [0.3, 0.6, 0.9])
def test_cut_files_are_truncated(textured_image, encode_as, fmt, kept):
    data = encode_as(textured_image, fmt)
    cut = data[: int(len(data) * kept)]
    with pytest.raises(TruncatedImage, match="truncated") as caught:
        decode(cut)
    assert f"{len(cut):,} bytes" in str(caught.value)


def test_cut_inside_a_jpeg_header_is_reported(textured_image, encode_as):
    data = encode_as(textured_image, "JPEG")
    with pytest.raises((TruncatedImage, CorruptImage), match="truncated"):
        decode(data[:40])


@pytest.mark.parametrize("corrupt, named", [
    (lambda png, jpeg: replace_png_chunk(png, b"IDAT", JUNK), "data is corrupt"),
    (lambda png, jpeg: replace_png_chunk(png, b"IDAT", zlib.compress(JUNK)), "data is corrupt"),
    (lambda png, jpeg: png[:29] + bytes([png[29] ^ 0xFF]) + png[30:], "start like a PNG"),
    (lambda png, jpeg: replace_png_chunk(png, b"IHDR", struct.pack(">IIBBBBB", 64, 48, 7, 2, 0, 0, 0)),
     "start like a PNG"),
    (lambda png, jpeg: zero_after(jpeg, b"\xff\xda", 18), "data is corrupt"),
    (lambda png, jpeg: jpeg_declaring(jpeg, 0, 0), "start like a JPEG"),
], ids=["png-junk-idat", "png-junk-zlib", "png-bad-crc", "png-bad-depth", "jpeg-junk-scan", "jpeg-zero-size"])
def test_damaged_files_are_corrupt(textured_image, encode_as, corrupt, named):
    data = corrupt(encode_as(textured_image, "PNG"), encode_as(textured_image, "JPEG"))
    with pytest.raises(CorruptImage, match=named):
        decode(data)


def test_too_many_bytes_is_refused_before_decoding(textured_image, encode_as):
    data = encode_as(textured_image, "PNG")
    with pytest.raises(ImageTooLarge, match=f"{len(data):,} bytes; the limit is 1,000 bytes"):
        decode(data, DecodeLimits(max_bytes=1000))
    with pytest.raises(ImageTooLarge):
        decode(b"not even an image" * 100, DecodeLimits(max_bytes=1000))


@pytest.mark.parametrize("data, limits, named", [
    (png_declaring(100_000, 100_000), DecodeLimits(), f"limit is {DEFAULT_MAX_PIXELS:,} pixels"),
    (png_declaring(20_000, 10), DecodeLimits(), "20000x10 px; the limit is 16384 px per side"),
    (png_declaring(10_000, 9_000), DecodeLimits(),
     f"10000x9000 px = 90,000,000 pixels; the limit is {DEFAULT_MAX_PIXELS:,}"),
    (png_declaring(300, 200), DecodeLimits(max_pixels=50_000), "300x200 px = 60,000 pixels"),
    (png_declaring(300, 200), DecodeLimits(max_side_px=256), "300x200 px; the limit is 256 px per side"),
], ids=["100000-square", "too-wide", "over-max-pixels", "custom-pixels", "custom-side"])
def test_declared_dimensions_are_checked_from_the_header(data, limits, named):
    # The headers carry no pixel data: reaching the decoder would fail as truncated, not as too large.
    with pytest.raises(TooManyPixels, match=named):
        decode(data, limits)


@pytest.mark.parametrize("textured_jpeg_size, named", [
    ((60_000, 60_000), f"limit is {DEFAULT_MAX_PIXELS:,} pixels"),
    ((20_000, 100), "20000x100 px; the limit is 16384 px per side"),
])
def test_jpeg_headers_are_checked_too(textured_image, encode_as, textured_jpeg_size, named):
    data = jpeg_declaring(encode_as(textured_image, "JPEG"), *textured_jpeg_size)
    with pytest.raises(TooManyPixels, match=named):
        decode(data)


def test_decompression_bomb_is_refused_without_decoding():
    bomb = png_bomb(10_000, 10_000)
    assert len(bomb) < 100_000  # a hundred million pixels in a few KB
    with pytest.raises(TooManyPixels, match="10000x10000 px = 100,000,000 pixels"):
        decode(bomb)


def test_default_pixel_limit_refuses_a_48_megapixel_png():
    bomb = png_bomb(8000, 6000)  # a few KB; decoded, about 950 MB of peak memory in `eval`
    with pytest.raises(TooManyPixels, match="8000x6000 px = 48,000,000 pixels"):
        decode(bomb)


@pytest.mark.parametrize("width, height", [(4032, 3024), (5712, 4284), (6000, 4000), (6240, 4160), (6720, 4480)],
                         ids=["12MP-phone", "24MP-phone", "24MP-camera", "26MP-camera", "30MP-camera"])
def test_default_pixel_limit_accepts_phone_and_camera_photos(width, height):
    # The header passes the limits; only then does the decoder find the pixel data missing.
    with pytest.raises((TruncatedImage, CorruptImage)):
        decode(png_declaring(width, height))


MEMORY_PROBE = """
import re, sys
sys.path.insert(0, {tests!r})
from adacompress.errors import TooManyPixels
from adacompress.images import decode
from test_images import png_bomb

def peak_kib():  # this process's own high-water mark (ru_maxrss would include the forking parent's)
    with open("/proc/self/status") as status:
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1))

bomb = png_bomb({width}, {height})
before = peak_kib()
try:
    decode(bomb)
except TooManyPixels:
    pass
print(peak_kib() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak memory from /proc")
@pytest.mark.parametrize("width, height", [(8000, 6000), (16_000, 16_000)])
def test_pixel_limit_is_enforced_before_pixels_are_allocated(width, height):
    probe = MEMORY_PROBE.format(tests=str(Path(__file__).parent), width=width, height=height)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    grown_kib = int(done.stdout.strip())
    assert grown_kib < 8 * 1024, f"peak memory grew {grown_kib} KiB while refusing a {width}x{height} bomb"


def test_every_decode_error_is_a_typed_bad_image():
    for error in (NotAnImage, TruncatedImage, CorruptImage, ImageTooLarge, TooManyPixels):
        assert issubclass(error, BadImage) and issubclass(error, AdaCompressError)
    codes = {error.code for error in (NotAnImage, TruncatedImage, CorruptImage, ImageTooLarge, TooManyPixels)}
    assert len(codes) == 5


# --- orientation and modes -----------------------------------------------------------------------

def _marked_image() -> Image.Image:
    """60x30, a blue strip on the left edge and a red strip along the top edge."""
    image = Image.new("RGB", (60, 30), (128, 128, 128))
    image.paste((0, 0, 255), (0, 0, 10, 30))
    image.paste((255, 0, 0), (10, 0, 60, 6))
    return image


def _edges(image: Image.Image) -> dict[str, str]:
    """Which colour sits at the middle of each edge: 'blue', 'red' or 'grey'."""
    w, h = image.size
    points = {"left": (2, h // 2), "right": (w - 3, h // 2), "top": (w // 2, 2), "bottom": (w // 2, h - 3)}
    names = {}
    for edge, xy in points.items():
        r, g, b = image.getpixel(xy)
        names[edge] = "blue" if b > 200 > r else "red" if r > 200 > b else "grey"
    return names


# EXIF orientation n: where the stored left (blue) and top (red) edges end up when displayed.
@pytest.mark.parametrize("orientation, blue_at, red_at", [
    (1, "left", "top"), (2, "right", "top"), (3, "right", "bottom"), (4, "left", "bottom"),
    (5, "top", "left"), (6, "top", "right"), (7, "bottom", "right"), (8, "bottom", "left"),
])
def test_exif_orientation_is_applied(encode_as, orientation, blue_at, red_at):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode_as(_marked_image(), "JPEG", quality=95, subsampling=0, exif=exif.tobytes())
    image = decode(data)
    assert image.size == ((30, 60) if orientation >= 5 else (60, 30))
    edges = _edges(image)
    assert edges[blue_at] == "blue"
    assert edges[red_at] == "red"


def _palette_image(transparent_index: int | None) -> Image.Image:
    image = Image.new("P", (10, 10), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0, 0, 0] * 254)
    image.paste(1, (0, 0, 5, 10))
    if transparent_index is not None:
        image.info["transparency"] = transparent_index
    return image


@pytest.mark.parametrize("image, fmt, left, right", [
    (Image.new("L", (10, 10), 77), "PNG", (77, 77, 77), (77, 77, 77)),
    (Image.new("1", (10, 10), 1), "PNG", (255, 255, 255), (255, 255, 255)),
    (_palette_image(None), "PNG", (0, 255, 0), (255, 0, 0)),
    (_palette_image(0), "PNG", (0, 255, 0), (255, 255, 255)),
    (_palette_image(0), "GIF", (0, 255, 0), (255, 255, 255)),
    (Image.merge("RGBA", [Image.new("L", (10, 10), v) for v in (0, 0, 255, 0)]), "PNG",
     (255, 255, 255), (255, 255, 255)),
    (Image.merge("LA", [Image.new("L", (10, 10), 40), Image.new("L", (10, 10), 255)]), "PNG",
     (40, 40, 40), (40, 40, 40)),
], ids=["L", "1", "P", "P-transparent-png", "P-transparent-gif", "RGBA-clear", "LA-opaque"])
def test_modes_become_rgb(encode_as, image, fmt, left, right):
    decoded = decode(encode_as(image, fmt))
    assert decoded.mode == "RGB"
    assert decoded.size == image.size
    assert decoded.getpixel((2, 5)) == left
    assert decoded.getpixel((8, 5)) == right


def test_alpha_is_composited_on_white(encode_as):
    image = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    image.paste((0, 0, 255, 255), (0, 0, 4, 10))
    image.paste((0, 0, 0, 128), (4, 0, 7, 10))
    decoded = decode(encode_as(image, "PNG"))
    assert decoded.getpixel((1, 5)) == (0, 0, 255)
    assert decoded.getpixel((9, 5)) == (255, 255, 255)
    assert all(abs(c - 127) <= 1 for c in decoded.getpixel((5, 5)))


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_becomes_rgb(encode_as, fmt):
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # no cyan, full magenta and yellow: red
    decoded = decode(encode_as(cmyk, fmt))
    assert decoded.mode == "RGB"
    r, g, b = decoded.getpixel((8, 8))
    assert r > 240 and g < 15 and b < 15


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
@pytest.mark.parametrize("value16, value8", [(0, 0), (257 * 64, 64), (32768, 128), (65535, 255)])
def test_16_bit_grey_scales_to_8_bit(encode_as, fmt, value16, value8):
    image = Image.fromarray(np.full((8, 8), value16, np.uint16))
    assert image.mode == "I;16"
    decoded = decode(encode_as(image, fmt))
    assert decoded.mode == "RGB"
    assert all(abs(c - value8) <= 1 for c in decoded.getpixel((4, 4))), decoded.getpixel((4, 4))


def test_16_bit_gradient_keeps_its_order(encode_as):
    ramp = np.linspace(0, 65535, 256).astype(np.uint16)[None, :].repeat(4, axis=0)
    row = np.asarray(decode(encode_as(Image.fromarray(ramp), "PNG")))[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert np.all(np.diff(row) >= 0)
    assert len(np.unique(row)) > 200  # not collapsed to black/white


# --- folders and image sets ----------------------------------------------------------------------

@pytest.fixture
def image_tree(tmp_path: Path, textured_image: Image.Image) -> Path:
    for relative in ["b.png", "a/z.JPG", "a/c/d.jpeg", "a/c/e.webp", "c.tif", "A_upper.PNG"]:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        textured_image.save(path, format={"jpg": "JPEG", "jpeg": "JPEG", "tif": "TIFF"}.get(
            path.suffix.lower()[1:], path.suffix[1:].upper()))
    for relative in ["notes.txt", "a/labels.json", "b.png.bak", "a/c/readme", "model.onnx"]:
        (tmp_path / relative).write_bytes(b"not an image")
    (tmp_path / "folder.png").mkdir()
    return tmp_path


def test_list_images_is_recursive_sorted_and_filters_suffixes(image_tree):
    found = [p.relative_to(image_tree).as_posix() for p in list_images(image_tree)]
    assert found == ["A_upper.PNG", "a/c/d.jpeg", "a/c/e.webp", "a/z.JPG", "b.png", "c.tif"]


def test_iter_images_decodes_in_list_order(image_tree, textured_image):
    pairs = list(iter_images(image_tree))
    assert [p for p, _ in pairs] == list_images(image_tree)
    assert all(image.mode == "RGB" and image.size == textured_image.size for _, image in pairs)


@pytest.mark.parametrize("make", [lambda tmp: tmp / "missing", lambda tmp: tmp / "file.png"])
def test_list_images_needs_a_folder(tmp_path, textured_image, make):
    textured_image.save(tmp_path / "file.png")
    with pytest.raises(FileNotFoundError, match="does not exist or is not a directory"):
        list_images(make(tmp_path))


def test_image_set_from_folder(image_folder, generated_images):
    images = ImageSet.from_folder(image_folder)
    assert len(images) == len(generated_images)
    assert [images.name(i) for i in range(len(images))] == sorted(p.name for p in image_folder.iterdir())
    for i, original in enumerate(generated_images):
        loaded = images.load(i)
        assert loaded.mode == "RGB"
        assert loaded.size == original.size


def test_image_set_applies_its_transform_once_per_load(generated_images):
    calls = []

    def shrink(image: Image.Image) -> Image.Image:
        calls.append(image.size)
        return image.resize((16, 12))

    images = ImageSet(generated_images, transform=shrink, keep_decoded=2)
    assert images.load(0).size == (16, 12)
    images.load(0)
    assert len(calls) == 1
    images.load(1)
    images.load(2)  # evicts image 0
    images.load(0)
    assert calls == [generated_images[i].size for i in (0, 1, 2, 0)]


def test_image_set_subset_keeps_items_and_transform(image_folder):
    images = ImageSet.from_folder(image_folder, transform=lambda im: im.convert("L").convert("RGB"))
    part = images.subset([3, 1])
    assert len(part) == 2
    assert [part.name(0), part.name(1)] == [images.name(3), images.name(1)]
    assert part.transform is images.transform
    assert np.array_equal(np.asarray(part.load(0)), np.asarray(images.load(3)))
    r, g, b = part.load(1).getpixel((5, 5))
    assert r == g == b


def test_image_set_converts_in_memory_images(generated_images):
    rgba = generated_images[0].convert("RGBA")
    images = ImageSet([rgba, generated_images[1].convert("L")])
    assert [images.load(i).mode for i in range(2)] == ["RGB", "RGB"]
    assert images.name(1) == "image-1"


def test_image_set_reports_bad_files_with_typed_errors(tmp_path, textured_image):
    textured_image.save(tmp_path / "good.png")
    (tmp_path / "bad.jpg").write_bytes(b"this was never a jpeg")
    images = ImageSet.from_folder(tmp_path)
    assert images.name(0) == "bad.jpg"
    with pytest.raises(NotAnImage):
        images.load(0)
    assert images.load(1).size == textured_image.size


def test_image_set_needs_images(tmp_path):
    with pytest.raises(ValueError, match="at least one image"):
        ImageSet([])
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageSet.from_folder(tmp_path)


# --- reduced decoding (JPEG draft) ---------------------------------------------------------------

@pytest.fixture(scope="module")
def jpeg_800x600(encode_as) -> bytes:
    rng = np.random.default_rng(5)
    ramp = np.linspace(0, 255, 800)[None, :, None] * np.array([1.0, 0.5, 0.2])
    pixels = np.clip(ramp + rng.normal(0, 10, (600, 800, 3)), 0, 255).astype(np.uint8)
    return encode_as(Image.fromarray(pixels), "JPEG", quality=90)


@pytest.mark.parametrize("short_side_px, size", [
    (None, (800, 600)), (601, (800, 600)), (600, (800, 600)), (300, (400, 300)), (299, (400, 300)),
    (150, (200, 150)), (100, (200, 150)), (75, (100, 75)), (10, (100, 75)),
])
def test_jpeg_decodes_reduced_but_never_below_the_short_side_asked(jpeg_800x600, short_side_px, size):
    image = decode(jpeg_800x600, draft_short_side_px=short_side_px)
    assert image.mode == "RGB"
    assert image.size == size


def test_reduced_jpeg_looks_like_the_full_decode_reduced(jpeg_800x600):
    reduced = np.asarray(decode(jpeg_800x600, draft_short_side_px=150), dtype=np.float64)
    boxed = np.asarray(decode(jpeg_800x600).reduce(4), dtype=np.float64)
    assert np.abs(reduced - boxed).mean() < 4.0


def test_reduced_decoding_keeps_exif_orientation(encode_as):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated a quarter turn: stored 800x400, displayed 400x800
    data = encode_as(_marked_image().resize((800, 400)), "JPEG", quality=90, exif=exif.tobytes())
    image = decode(data, draft_short_side_px=100)
    assert image.size == (100, 200)
    assert _edges(image)["top"] == "blue"


def test_reduced_decoding_leaves_other_formats_full_size(textured_image, encode_as):
    image = decode(encode_as(textured_image.resize((800, 600)), "PNG"), draft_short_side_px=100)
    assert image.size == (800, 600)


def test_reduced_decoding_checks_the_limits_on_the_declared_size(textured_image, encode_as):
    data = jpeg_declaring(encode_as(textured_image, "JPEG"), 8000, 6000)  # 1/8 of it would be 750x563
    with pytest.raises(TooManyPixels, match="8000x6000 px = 48,000,000 pixels"):
        decode(data, draft_short_side_px=100)


def test_image_set_decodes_reduced_when_asked(tmp_path, jpeg_800x600):
    (tmp_path / "a.jpg").write_bytes(jpeg_800x600)
    (tmp_path / "b.jpg").write_bytes(jpeg_800x600)
    assert ImageSet.from_folder(tmp_path).load(0).size == (800, 600)
    images = ImageSet.from_folder(tmp_path, draft_short_side_px=150)
    assert images.load(0).size == (200, 150)
    assert images.subset([1]).load(0).size == (200, 150)
