"""Each provider's documented upload limits, checked before a byte leaves the machine.

A rejected upload still costs a round trip (and on some APIs a billed call), and a 6 MB image
sent to Rekognition is 6 MB of wasted bandwidth, so clients check here first. The fake servers
enforce the same numbers, so tests exercise one source of truth. Dimensions come from the image
header (`PIL.Image.open(...).size`): nothing is decoded.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from adacompress.errors import (
    BadImage,
    ImageTooLarge,
    ImageTooSmall,
    NotAnImage,
    TooManyPixels,
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


REKOGNITION_LIMITS = ImageLimits(max_bytes=5 * MIB, formats=frozenset({"JPEG", "PNG"}),
                                 min_side_px=80, max_side_px=10_000)
BAIDU_LIMITS = ImageLimits(max_bytes=3 * MIB, formats=frozenset({"JPEG", "PNG", "BMP"}),
                           min_side_px=30, max_side_px=4096, max_aspect=3.0,
                           max_request_bytes=4 * MIB, request_what="base64 image")
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
    return header


def check_request_size(size: int, limits: ImageLimits, backend: str) -> None:
    """Raise `ImageTooLarge` when the encoded payload is over the provider's request limit."""
    if limits.max_request_bytes and size > limits.max_request_bytes:
        raise ImageTooLarge(f"{backend}: the {limits.request_what} is {_size(size)}; the limit is "
                            f"{_size(limits.max_request_bytes)} (base64 adds a third: upload a smaller image)")
