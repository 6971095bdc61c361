"""Safe decoding of untrusted image bytes and deterministic image folders.

Every failure is a typed `BadImage` naming the limit or the defect, checked before pixels are
allocated where possible (byte size, header dimensions), so a decompression bomb costs nothing.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from adacompress import config
from adacompress.errors import CorruptImage, ImageTooLarge, NotAnImage, TooManyPixels, TruncatedImage

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds on what a client may send us."""

    max_bytes: int = config.DEFAULT_MAX_UPLOAD_BYTES
    """Largest accepted upload in bytes."""
    max_pixels: int = config.DEFAULT_MAX_PIXELS
    """Largest width*height accepted (decompression-bomb guard)."""
    max_side_px: int = config.DEFAULT_MAX_SIDE_PX
    """Largest accepted width or height."""

    @classmethod
    def from_settings(cls, settings: config.Settings | None = None) -> DecodeLimits:
        """The limits the environment sets (`ADACOMPRESS_MAX_UPLOAD_BYTES`, ...)."""
        settings = settings or config.settings()
        return cls(settings.max_upload_bytes, settings.max_pixels, settings.max_side_px)


DEFAULT_LIMITS = DecodeLimits()


def decode(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS, draft_short_side_px: int | None = None) -> Image.Image:
    """Decode bytes into an upright RGB image, or raise a `BadImage` subclass saying why.

    With `draft_short_side_px`, a JPEG is decoded at 1/2, 1/4 or 1/8 scale (the decoder skips the
    detail, so it costs a fraction of the memory and time) as long as its short side stays at least
    that many pixels; other formats decode at full size. The limits apply to the declared size either way.
    Not for serving: a decision encodes the upload at its full size.
    """
    if not data:
        raise NotAnImage("upload is empty (0 bytes); send a JPEG, PNG, WebP, BMP, GIF or TIFF image")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"upload is {len(data):,} bytes; the limit is {limits.max_bytes:,} bytes")
    try:
        with warnings.catch_warnings():
            # Our limits decide, not Pillow's global default (which would cap max_pixels at ~89M).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        claimed = _signature_format(data)
        if claimed:
            raise CorruptImage(f"{len(data):,} bytes start like a {claimed} image, "
                               "but its header is corrupt or truncated") from exc
        raise NotAnImage(f"{len(data):,} bytes are not an image format we can read") from exc
    except Image.DecompressionBombError as exc:
        raise TooManyPixels(f"image header declares too many pixels ({exc}); "
                            f"the limit is {limits.max_pixels:,} pixels") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise _data_error("header", data, exc) from exc
    _check_dimensions(image.size, limits)
    if draft_short_side_px:
        _draft(image, draft_short_side_px)
    try:
        image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise _data_error("data", data, exc) from exc
    return to_rgb(image)


_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"),
               (b"GIF89a", "GIF"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))


def _signature_format(data: bytes) -> str | None:
    """The format whose magic bytes open `data`: Pillow reports a broken header as "unidentified"."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((name for magic, name in _SIGNATURES if data.startswith(magic)), None)


def _data_error(part: str, data: bytes, exc: Exception) -> TruncatedImage | CorruptImage:
    """Pillow says "truncated" only when the bytes ran out; any other decoder failure is corruption."""
    if "truncated" in str(exc).lower():
        return TruncatedImage(f"image {part} is truncated ({len(data):,} bytes): {exc}")
    return CorruptImage(f"image {part} is corrupt: {exc}")


def _check_dimensions(size: tuple[int, int], limits: DecodeLimits) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise CorruptImage(f"image declares {width}x{height} px")
    if max(width, height) > limits.max_side_px:
        raise TooManyPixels(f"image is {width}x{height} px; the limit is {limits.max_side_px} px per side")
    if width * height > limits.max_pixels:
        raise TooManyPixels(f"image is {width}x{height} px = {width * height:,} pixels; "
                            f"the limit is {limits.max_pixels:,} pixels")


def _draft(image: Image.Image, short_side_px: int) -> None:
    """Ask a JPEG (or MPO) decoder for the largest scale-down (8, 4 or 2) keeping the short side >= `short_side_px`;
    other formats ignore drafts."""
    width, height = image.size
    scale = next((s for s in (8, 4, 2) if min(width, height) // s >= short_side_px), 1)
    if scale > 1:
        image.draft(image.mode, (width // scale, height // scale))


_TRANSPOSITIONS = range(2, 9)
"""EXIF orientations other than upright (1)."""


def to_rgb(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation and bring any mode (L, P, RGBA, CMYK, I;16, ...) to 8-bit RGB.

    An upright RGB image comes back as it is: `exif_transpose` would copy it (20 ms at 12 MP)."""
    if image.getexif().get(ExifTags.Base.Orientation, 1) in _TRANSPOSITIONS:
        image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I"):
        # 16-bit grey: Pillow's convert("L") clips at 255, so scale the full 0..65535 range instead.
        arr = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        image = image.convert("L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB") if image.mode != "RGB" else image


def open_image(path: str | Path, limits: DecodeLimits = DEFAULT_LIMITS,
               draft_short_side_px: int | None = None) -> Image.Image:
    """Decode a file with the same checks as an upload (`decode`)."""
    return decode(Path(path).read_bytes(), limits, draft_short_side_px)


def list_images(folder: str | Path) -> list[Path]:
    """Image files under `folder`, recursive, sorted by relative path so runs are reproducible."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist or is not a directory")
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def iter_images(folder: str | Path, limits: DecodeLimits = DEFAULT_LIMITS) -> Iterator[tuple[Path, Image.Image]]:
    """(path, image) pairs for every readable image under `folder`, in `list_images` order."""
    for path in list_images(folder):
        yield path, open_image(path, limits)


class ImageSet:
    """An indexed, read-only set of images (files or in-memory), optionally passed through a transform.

    Items are decoded on demand and the last few are kept, so a set of thousands of photos costs
    only what one step needs. With `draft_short_side_px`, JPEG files decode reduced (`decode`): the
    set then stands for smaller photos, which suits an evaluation that accepts that, not serving.
    """

    def __init__(self, items: list[Path] | list[Image.Image], transform=None, keep_decoded: int = 4,
                 limits: DecodeLimits = DEFAULT_LIMITS, draft_short_side_px: int | None = None) -> None:
        if not items:
            raise ValueError("an image set needs at least one image")
        self._items = list(items)
        self.transform = transform
        self._limits = limits
        self.draft_short_side_px = draft_short_side_px
        self._keep = keep_decoded
        self._decoded: dict[int, Image.Image] = {}

    @classmethod
    def from_folder(cls, folder: str | Path, **kwargs) -> ImageSet:
        paths = list_images(folder)
        if not paths:
            raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
        return cls(paths, **kwargs)

    def __len__(self) -> int:
        return len(self._items)

    def name(self, index: int) -> str:
        item = self._items[index]
        return item.name if isinstance(item, Path) else f"image-{index}"

    def load(self, index: int) -> Image.Image:
        if index not in self._decoded:
            item = self._items[index]
            image = (open_image(item, self._limits, self.draft_short_side_px) if isinstance(item, Path)
                     else to_rgb(item))
            if self.transform is not None:
                image = self.transform(image)
            if len(self._decoded) >= self._keep:
                self._decoded.pop(next(iter(self._decoded)))
            self._decoded[index] = image
        return self._decoded[index]

    def subset(self, indices: list[int]) -> ImageSet:
        return ImageSet([self._items[i] for i in indices], self.transform, self._keep, self._limits,
                        self.draft_short_side_px)


class AugmentedImageSet(ImageSet):
    """Each image of a base set followed by `views` seeded random crops (60-90% of each side, maybe mirrored).

    Training on views multiplies the labelled examples a call budget buys: a new view costs a
    reference and a few probes, far less than the answers it teaches.
    """

    def __init__(self, base: ImageSet, views: int, seed: int = 0) -> None:
        self.base, self.views, self.seed = base, views, seed

    def __len__(self) -> int:
        return len(self.base) * (self.views + 1)

    def name(self, index: int) -> str:
        base_index, view = divmod(index, self.views + 1)
        return self.base.name(base_index) + (f"#view{view}" if view else "")

    def load(self, index: int) -> Image.Image:
        base_index, view = divmod(index, self.views + 1)
        image = self.base.load(base_index)
        if not view:
            return image
        rng = np.random.default_rng([self.seed, base_index, view])
        w, h = image.size
        scale = rng.uniform(0.6, 0.9)
        cw, ch = max(1, int(w * scale)), max(1, int(h * scale))
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        view_image = image.crop((left, top, left + cw, top + ch))
        return view_image.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else view_image

    def subset(self, indices: list[int]) -> ImageSet:
        raise NotImplementedError("take a subset of the base set, then augment it")
