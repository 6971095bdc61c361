"""Each provider's documented upload limits, checked before a byte leaves the machine.

A rejected upload still costs a round trip (and on some APIs a billed call), and a 6 MB image
sent to Rekognition is 6 MB of wasted bandwidth, so clients check here first. The fake servers
enforce the same numbers, so tests exercise one source of truth. Format and dimensions come
from the header; then every byte is read (`verify_pixels`), because a truncated or corrupt file
has a perfect header and would be sent for nothing.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from adacompress.errors import (
    BadImage,
    CorruptImage,
    ImageTooLarge,
    ImageTooSmall,
    NotAnImage,
    TooManyPixels,
    TruncatedImage,
    UnsupportedFormat,
)

MIB = 1024 * 1024


class BadAspectRatio(BadImage):
    code = "bad_aspect_ratio"


@dataclass(frozen=True)
class ImageLimits:
    """What one provider accepts for one upload."""

    max_bytes: int
    """Largest raw image in bytes."""
    formats: frozenset[str]
    """Accepted Pillow format names (JPEG, PNG, ...)."""
    min_side_px: int = 1
    """Smallest accepted width and height."""
    max_side_px: int | None = None
    """Largest accepted width and height."""
    max_pixels: int | None = None
    """Largest width*height."""
    max_aspect: float | None = None
    """Largest long-side/short-side ratio."""
    max_request_bytes: int | None = None
    """Largest encoded payload (base64 string, form body or JSON), checked by the client."""
    request_what: str = "request body"
    """What `max_request_bytes` measures, for error messages."""
    decode_check: bool = True
    """Decode the pixels before upload (off only in tests that need a broken file to reach a fake)."""


REKOGNITION_LIMITS = ImageLimits(max_bytes=5 * MIB, formats=frozenset({"JPEG", "PNG"}),
                                 min_side_px=80, max_side_px=10_000)
BAIDU_LIMITS = ImageLimits(max_bytes=3 * MIB, formats=frozenset({"JPEG", "PNG", "BMP"}),
                           min_side_px=15, max_side_px=4096,
                           max_request_bytes=4 * MIB, request_what="base64 image")
"""15 px (advanced_general API page), 4096 px and 4 MB of base64 (error 216202's text and the pre-2024 API
page); the overview table's 30 px and 3:1 aspect cap are not on the API page, so they are not enforced."""
FACEPP_LIMITS = ImageLimits(max_bytes=2 * MIB, formats=frozenset({"JPEG", "PNG"}),
                            min_side_px=48, max_side_px=4096,
                            max_request_bytes=2 * MIB, request_what="form body")
GOOGLE_LIMITS = ImageLimits(max_bytes=20 * MIB,
                            formats=frozenset({"JPEG", "PNG", "GIF", "BMP", "WEBP", "ICO", "TIFF"}),
                            max_pixels=75_000_000, max_request_bytes=10 * MIB, request_what="JSON request")


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int


def _size(n: int) -> str:
    return f"{n:,} bytes ({n / MIB:.2f} MiB)"


def read_header(data: bytes, backend: str) -> ImageHeader:
    """Format and dimensions from the header only, or `NotAnImage`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return ImageHeader(image.format or "unknown", *image.size)
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(f"{backend}: image header declares too many pixels ({exc})") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise NotAnImage(f"{backend}: the {len(data):,} uploaded bytes are not a readable image") from exc


def verify_pixels(data: bytes, backend: str) -> None:
    """Read every byte of the image, or raise `TruncatedImage` / `CorruptImage`.

    JPEG is decoded at 1/8 scale (every byte is still entropy-decoded, at a fraction of the cost);
    PNG is verified chunk by chunk with its CRCs, so a 100 MP PNG is not inflated into 300 MB;
    other formats are decoded.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.format == "PNG":
                    image.verify()
                    return
                if image.format == "JPEG":
                    image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
                image.load()
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(f"{backend}: image has too many pixels to decode safely ({exc})") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        if "truncated" in str(exc).lower():
            raise TruncatedImage(f"{backend}: image is truncated ({len(data):,} bytes: {exc}); the header is "
                                 "intact but the pixels stop early, so nothing was uploaded; send the whole file") \
                from exc
        raise CorruptImage(f"{backend}: image data is corrupt ({exc}); nothing was uploaded") from exc


def check_image(data: bytes, limits: ImageLimits, backend: str) -> ImageHeader:
    """Raise the `BadImage` subclass naming the first limit `data` breaks; return its header."""
    accepted = ", ".join(sorted(limits.formats))
    if not data:
        raise NotAnImage(f"{backend}: the upload is empty (0 bytes); send {accepted}")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"{backend}: image is {_size(len(data))}; the limit is {_size(limits.max_bytes)}")
    header = read_header(data, backend)
    if header.format not in limits.formats:
        raise UnsupportedFormat(f"{backend}: image is {header.format}; {backend} accepts {accepted}")
    w, h = header.width, header.height
    if min(w, h) < limits.min_side_px:
        raise ImageTooSmall(f"{backend}: image is {w}x{h} px; each side must be at least "
                            f"{limits.min_side_px} px")
    if limits.max_side_px and max(w, h) > limits.max_side_px:
        raise TooManyPixels(f"{backend}: image is {w}x{h} px; each side must be at most "
                            f"{limits.max_side_px} px")
    if limits.max_pixels and w * h > limits.max_pixels:
        raise TooManyPixels(f"{backend}: image is {w}x{h} px = {w * h:,} pixels; the limit is "
                            f"{limits.max_pixels:,} pixels")
    if limits.max_aspect and max(w, h) > limits.max_aspect * min(w, h):
        raise BadAspectRatio(f"{backend}: image is {w}x{h} px, aspect ratio {max(w, h) / min(w, h):.2f}:1; "
                            f"the limit is {limits.max_aspect:g}:1")
    if limits.decode_check:
        verify_pixels(data, backend)
    return header


def check_request_size(size: int, limits: ImageLimits, backend: str) -> None:
    """Raise `ImageTooLarge` when the encoded payload is over the provider's request limit."""
    if limits.max_request_bytes and size > limits.max_request_bytes:
        raise ImageTooLarge(f"{backend}: the {limits.request_what} is {_size(size)}; the limit is "
                            f"{_size(limits.max_request_bytes)} (base64 adds a third: upload a smaller image)")
