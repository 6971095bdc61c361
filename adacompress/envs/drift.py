"""Scene-drift transforms: the same photos seen at night, in fog, rain or snow, blurred, noisy or pre-compressed.

Drift is what the service must notice and adapt to: how much JPEG quality the backend tolerates changes
strongly under these conditions (see docs/architecture.md). Fog, snow, contrast, blur and noise come from
`imagecorruptions` (the ImageNet-C corruptions); night, rain and jpeg-source are written here because no
ImageNet-C corruption makes a scene darker, adds rain streaks, or stands for a source that was already
compressed by someone else.

Every transform is a pure function of (name, severity, seed, index, image): a rerun of a replay sees the
same pixels, while `index` gives each image of a stream its own noise. Severity 1 is mild, 5 severe.
"""

from __future__ import annotations

import io
import math
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from adacompress.codec import Action, encode
from adacompress.errors import AdaCompressError

SEVERITIES = range(1, 6)
"""1 mild .. 5 severe."""


class DriftError(AdaCompressError, ValueError):
    """A scene transform that does not exist, or a severity outside 1..5."""

    code = "bad_drift"


_Apply = Callable[[Image.Image, int, np.random.SeedSequence], Image.Image]


def _identity(image: Image.Image, severity: int, seeds: np.random.SeedSequence) -> Image.Image:
    return image


# Night, per severity: exposure gain, gamma, blue cast, sensor-noise sigma (on 0..1). Severity 3 is the
# formula of the drift study in research/offline-models-images.md (gain 0.35, gamma 2.2, tint .8/.9/1.2).
_NIGHT_GAIN = (0.8, 0.55, 0.35, 0.27, 0.2)
_NIGHT_GAMMA = (1.2, 1.7, 2.2, 2.4, 2.6)
_NIGHT_BLUE_CAST = (0.05, 0.1, 0.2, 0.25, 0.3)
_NIGHT_NOISE_SIGMA = (0.01, 0.015, 0.02, 0.03, 0.04)


def _night(image: Image.Image, severity: int, seeds: np.random.SeedSequence) -> Image.Image:
    """Low light: a camera's short exposure crushes the shadows (gamma), street light turns blue, gain adds noise."""
    i = severity - 1
    x = np.asarray(image, dtype=np.float32) / 255.0
    cast = _NIGHT_BLUE_CAST[i]
    tint = np.array([1.0 - cast, 1.0 - cast / 2, 1.0 + cast], dtype=np.float32)
    noise = np.random.default_rng(seeds).normal(0.0, _NIGHT_NOISE_SIGMA[i], x.shape).astype(np.float32)
    return _from_unit(x ** _NIGHT_GAMMA[i] * (_NIGHT_GAIN[i] * tint) + noise)


# Rain, per severity: streaks per 10,000 px, streak length as a share of the image height, streak opacity,
# scene dimming (overcast), haze blur radius in px (water in the air and on the lens), streak width in px.
_RAIN_DROPS_PER_10K_PX = (6, 10, 16, 24, 32)
_RAIN_LENGTH_SHARE = (0.05, 0.06, 0.08, 0.10, 0.12)
_RAIN_OPACITY = (0.4, 0.45, 0.55, 0.6, 0.65)
_RAIN_DIM = (0.95, 0.9, 0.85, 0.8, 0.75)
_RAIN_HAZE_RADIUS_PX = (0.0, 0.5, 1.0, 1.5, 2.0)
_RAIN_WIDTH_PX = (1, 1, 1, 2, 2)
_RAIN_MAX_SLANT_DEG = 20.0
_RAIN_GREY = 0.85


def _rain(image: Image.Image, severity: int, seeds: np.random.SeedSequence) -> Image.Image:
    """Streaks of falling rain, all slanted by one wind angle, over a dimmer, slightly hazy scene."""
    i = severity - 1
    rng = np.random.default_rng(seeds)
    width, height = image.size
    length = max(2.0, _RAIN_LENGTH_SHARE[i] * height)
    angle = math.radians(rng.uniform(-_RAIN_MAX_SLANT_DEG, _RAIN_MAX_SLANT_DEG))
    dx, dy = length * math.sin(angle), length * math.cos(angle)
    count = max(1, round(_RAIN_DROPS_PER_10K_PX[i] * width * height / 10_000))
    # Streaks may start above or beside the frame so the edges get rain too.
    starts_x = rng.uniform(-abs(dx), width + abs(dx), count)
    starts_y = rng.uniform(-dy, height, count)
    streaks = Image.new("L", image.size, 0)
    draw = ImageDraw.Draw(streaks)
    for x0, y0 in zip(starts_x.tolist(), starts_y.tolist(), strict=True):
        draw.line((x0, y0, x0 + dx, y0 + dy), fill=255, width=_RAIN_WIDTH_PX[i])
    streaks = streaks.filter(ImageFilter.GaussianBlur(0.6))
    scene = image.filter(ImageFilter.GaussianBlur(_RAIN_HAZE_RADIUS_PX[i])) if _RAIN_HAZE_RADIUS_PX[i] else image
    x = np.asarray(scene, dtype=np.float32) / 255.0 * _RAIN_DIM[i]
    alpha = np.asarray(streaks, dtype=np.float32)[..., None] / 255.0 * _RAIN_OPACITY[i]
    return _from_unit(x * (1.0 - alpha) + _RAIN_GREY * alpha)


JPEG_SOURCE_QUALITIES = (60, 40, 25, 15, 8)
"""JPEG quality of the already-compressed source at severity 1..5. `imagecorruptions`' jpeg_compression starts
at q=25, which leaves no mild level; a source at q=60 is a common phone or web re-save."""


def _jpeg_source(image: Image.Image, severity: int, seeds: np.random.SeedSequence) -> Image.Image:
    """Photos that arrive already compressed: their blocking and lost detail are there before we encode."""
    encoded = encode(image, Action("jpeg", JPEG_SOURCE_QUALITIES[severity - 1]))
    with Image.open(io.BytesIO(encoded.data)) as decoded:
        return decoded.convert("RGB")


_GLOBAL_RNG_LOCK = threading.Lock()


@contextmanager
def _seeded_global_numpy(seed: int) -> Iterator[None]:
    """`imagecorruptions` draws from numpy's global RNG: seed it for one call, then put back what was there.

    The lock keeps two drift calls in different threads from reseeding under each other; code outside this
    module that draws from the global RNG at the same moment is not covered (nothing in this package does).
    """
    with _GLOBAL_RNG_LOCK:
        saved = np.random.get_state()
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(saved)


def _library(corruption: str) -> _Apply:
    """One ImageNet-C corruption from `imagecorruptions`, seeded from our seeds."""

    def apply(image: Image.Image, severity: int, seeds: np.random.SeedSequence) -> Image.Image:
        # Imported on first use: the library pulls numba, opencv and scipy, which plain serving never needs.
        from imagecorruptions import corruption_dict

        # Called directly rather than through `imagecorruptions.corrupt`, which refuses images under 32 px
        # a side although every corruption used here handles them (tests/envs/test_drift.py checks 1x1).
        with _seeded_global_numpy(int(seeds.generate_state(1)[0])):
            corrupted = corruption_dict[corruption](image, severity)
        return _from_unit(np.asarray(corrupted, dtype=np.float32) / 255.0)

    return apply


def _from_unit(x: np.ndarray) -> Image.Image:
    """Float pixels on 0..1 to an 8-bit RGB image, rounded rather than truncated."""
    return Image.fromarray(np.rint(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8), "RGB")


_APPLY: dict[str, _Apply] = {
    "none": _identity,
    "night": _night,
    "fog": _library("fog"),
    "rain": _rain,
    "snow": _library("snow"),
    "contrast": _library("contrast"),
    "blur": _library("defocus_blur"),
    "noise": _library("gaussian_noise"),
    "jpeg-source": _jpeg_source,
}

TRANSFORMS: tuple[str, ...] = tuple(_APPLY)
"""Every transform name, `none` (the identity) first."""


@dataclass(frozen=True)
class SceneTransform:
    """One scene condition at one severity, callable on an RGB image: `SceneTransform("night", 3)(photo)`.

    Randomness (sensor noise, fog, rain streaks, snow) comes from (seed, index, name) and not from the
    severity, so raising the severity of one image strengthens the same fog rather than drawing new fog.
    """

    name: str
    """One of `TRANSFORMS`."""
    severity: int
    """1 (mild) .. 5 (severe); ignored by `none`, which still checks it."""
    seed: int = 0
    """Root of every random draw; the same seed reproduces a whole replay."""

    takes_index: ClassVar[bool] = True
    """Tells an image set to call `transform(image, index)` so each image of a stream gets its own noise."""

    def __post_init__(self) -> None:
        if self.name not in _APPLY:
            raise DriftError(f"unknown scene transform {self.name!r}; known: {', '.join(TRANSFORMS)}")
        if isinstance(self.severity, bool) or not isinstance(self.severity, int) or self.severity not in SEVERITIES:
            raise DriftError(f"severity {self.severity!r} of {self.name!r} is not an integer in "
                             f"{SEVERITIES.start}..{SEVERITIES.stop - 1} (1 mild .. 5 severe)")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise DriftError(f"seed {self.seed!r} of {self.label} must be a non-negative integer")

    @property
    def label(self) -> str:
        """`night:3`, or `none` for the identity; `parse_transform` reads it back."""
        return self.name if self.name == "none" else f"{self.name}:{self.severity}"

    def __call__(self, image: Image.Image, index: int = 0) -> Image.Image:
        """The image as seen under this condition: RGB, same size; `none` returns the RGB input itself."""
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise DriftError(f"image index {index!r} for {self.label} must be a non-negative integer")
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        seeds = np.random.SeedSequence([self.seed, index, zlib.crc32(self.name.encode())])
        return _APPLY[self.name](rgb, self.severity, seeds)


def make_transform(name: str, severity: int, seed: int = 0) -> SceneTransform:
    """A checked transform; raises `DriftError` naming the known transforms or the severity range."""
    return SceneTransform(name, severity, seed)


def parse_transform(spec: str, seed: int = 0) -> SceneTransform:
    """Read `"night:3"` or `"none"` (a scenario file's or the CLI's spelling) into a transform."""
    name, sep, severity_text = spec.strip().lower().partition(":")
    if name == "none" and not sep:
        return SceneTransform("none", SEVERITIES.start, seed)
    if not sep:
        raise DriftError(f"transform {spec!r} needs a severity, e.g. {name or 'night'}:3 "
                         f"(known: {', '.join(TRANSFORMS)})")
    try:
        severity = int(severity_text)
    except ValueError:
        raise DriftError(f"severity {severity_text!r} in {spec!r} is not an integer in "
                         f"{SEVERITIES.start}..{SEVERITIES.stop - 1}") from None
    return SceneTransform(name, severity, seed)
