"""The action ladder and encoding: action -> (bytes, info).

The ladder is data: each rung is a codec and a quality, so richer ladders (WebP, AVIF) are new
entries, not new code paths. Encoding is deterministic: the same image and action give the same bytes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from itertools import groupby

from PIL import Image, features

from adacompress.errors import AdaCompressError

DEFAULT_QUALITIES = (5, 10, *range(15, 100, 10))
"""The paper's 5, 15, ..., 95 plus 10: most images live at the cheap end, where q=15 costs almost twice q=5's
bytes, so a rung between them lets the agent hedge on a doubtful image for half the price."""
REFERENCE_QUALITY = 75
_PILLOW_FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}


class LadderError(AdaCompressError, ValueError):
    """A ladder or action specification that cannot be used."""

    code = "bad_ladder"


@dataclass(frozen=True, order=True)
class Action:
    """One rung: encode with `codec` at `quality` (1..100)."""

    codec: str
    quality: int

    def __post_init__(self) -> None:
        if self.codec not in _PILLOW_FORMATS:
            raise LadderError(f"unknown codec {self.codec!r}; known: {', '.join(_PILLOW_FORMATS)}")
        if not 1 <= self.quality <= 100:
            raise LadderError(f"quality {self.quality} is outside 1..100")

    @property
    def label(self) -> str:
        return f"{self.codec}:{self.quality}"


@dataclass(frozen=True)
class EncodeInfo:
    codec: str
    quality: int
    bytes: int
    bits_per_pixel: float


@dataclass(frozen=True)
class Encoded:
    data: bytes
    info: EncodeInfo


def codec_available(codec: str) -> bool:
    """Whether the installed Pillow can write `codec` (AVIF depends on the build)."""
    if codec == "jpeg":
        return True
    return codec in _PILLOW_FORMATS and bool(features.check(codec))


def encode(image: Image.Image, action: Action) -> Encoded:
    """Encode an RGB image at one rung of the ladder."""
    if not codec_available(action.codec):
        raise LadderError(f"this Pillow build cannot write {action.codec}")
    buffer = io.BytesIO()
    options: dict = {"quality": action.quality}
    if action.codec == "webp":
        options["method"] = 4
    image.convert("RGB").save(buffer, format=_PILLOW_FORMATS[action.codec], **options)
    data = buffer.getvalue()
    width, height = image.size
    info = EncodeInfo(action.codec, action.quality, len(data), 8.0 * len(data) / (width * height))
    return Encoded(data, info)


@dataclass(frozen=True)
class Ladder:
    """The ordered actions an agent chooses from; index = the env's discrete action."""

    actions: tuple[Action, ...]

    def __post_init__(self) -> None:
        if not self.actions:
            raise LadderError("a ladder needs at least one action")
        if len(set(self.actions)) != len(self.actions):
            raise LadderError("a ladder must not repeat an action")

    def __len__(self) -> int:
        return len(self.actions)

    def __getitem__(self, index: int) -> Action:
        return self.actions[index]

    def encode(self, image: Image.Image, index: int) -> Encoded:
        return encode(image, self.actions[int(index)])

    @property
    def spec(self) -> str:
        """The ladder written back in `Ladder.parse` syntax, one group per run of a codec (order kept)."""
        return ";".join(f"{codec}:{','.join(str(a.quality) for a in run)}"
                        for codec, run in groupby(self.actions, key=lambda a: a.codec))

    @classmethod
    def parse(cls, spec: str) -> Ladder:
        """Parse `jpeg:5,15,25` or `jpeg:5,15;webp:10,30` (codec groups separated by `;`)."""
        actions = []
        for group in filter(None, (g.strip() for g in spec.split(";"))):
            codec, _, qualities = group.partition(":")
            if not qualities:
                raise LadderError(f"ladder group {group!r} needs the form codec:q1,q2,...")
            try:
                actions += [Action(codec.strip().lower(), int(q)) for q in qualities.split(",") if q.strip()]
            except ValueError as exc:
                raise LadderError(f"ladder group {group!r}: {exc}") from exc
        return cls(tuple(actions))


DEFAULT_LADDER = Ladder(tuple(Action("jpeg", q) for q in DEFAULT_QUALITIES))
REFERENCE_ACTION = Action("jpeg", REFERENCE_QUALITY)
