"""The action ladder and encoding: action -> (bytes, info).

The ladder is data: each rung is a codec, a quality and a size cap, so richer ladders (WebP, AVIF,
smaller uploads) are new entries, not new code paths. Encoding is deterministic: the same image and
action give the same bytes.

A size cap is a short side in pixels (`jpeg:25@256`: at most 256 px on the short side, never
upscaled), not a fraction: the backend's model looks at a fixed ~224-300 px whatever arrives, so an
absolute cap means the same thing to the model for a 0.2 MP thumbnail and a 12 MP phone photo.
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


MIN_SHORT_SIDE_PX = 16
"""The smallest size cap a ladder may name: below it no model sees anything."""


@dataclass(frozen=True, order=True)
class Action:
    """One rung: shrink to at most `short_side` px on the short side (0: as is), encode with `codec` at `quality`."""

    codec: str
    quality: int
    short_side: int = 0

    def __post_init__(self) -> None:
        if self.codec not in _PILLOW_FORMATS:
            raise LadderError(f"unknown codec {self.codec!r}; known: {', '.join(_PILLOW_FORMATS)}")
        if not 1 <= self.quality <= 100:
            raise LadderError(f"quality {self.quality} is outside 1..100")
        if self.short_side and self.short_side < MIN_SHORT_SIDE_PX:
            raise LadderError(f"size cap @{self.short_side} is below {MIN_SHORT_SIDE_PX} px")
        if self.short_side < 0:
            raise LadderError(f"size cap @{self.short_side} must be positive")

    @property
    def label(self) -> str:
        """`jpeg:25`, or `jpeg:25@256` with a size cap: the form `Action.parse` reads."""
        return f"{self.codec}:{self.quality}" + (f"@{self.short_side}" if self.short_side else "")

    @property
    def pillow_format(self) -> str:
        """The format name Pillow (and `ImageLimits.formats`) use for this codec."""
        return _PILLOW_FORMATS[self.codec]

    def target_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """Width and height this action sends for an image of `size`: the cap applied, aspect kept, never upscaled."""
        width, height = size
        short = min(width, height)
        if not self.short_side or short <= self.short_side:
            return size
        scale = self.short_side / short
        return max(1, round(width * scale)), max(1, round(height * scale))

    @classmethod
    def parse(cls, text: str) -> Action:
        """`jpeg:25`, `25` (JPEG), `webp:30` or `jpeg:25@256`."""
        body, _, cap = text.strip().partition("@")
        codec, _, quality = body.rpartition(":")
        try:
            return cls(codec.strip().lower() or "jpeg", int(quality), int(cap) if cap else 0)
        except LadderError:
            raise
        except ValueError as exc:
            raise LadderError(f"action {text!r}: expected codec:quality[@short_side], e.g. jpeg:25@256") from exc


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


RESAMPLE = Image.Resampling.LANCZOS
"""Downscaling filter for size caps (bench/results/resize.json: LANCZOS against BILINEAR and box)."""
REDUCING_GAP = 2.0
"""Box-reduce by an integer factor first while the image is over twice the target: near-LANCZOS quality
at a fraction of its cost on a 12 MP photo."""


def resize_for(image: Image.Image, action: Action) -> Image.Image:
    """The image `action` encodes: `image` itself, or its downscaled copy under the action's size cap."""
    size = action.target_size(image.size)
    if size == image.size:
        return image
    return image.resize(size, RESAMPLE, reducing_gap=REDUCING_GAP)


def encode(image: Image.Image, action: Action) -> Encoded:
    """Encode an RGB image at one rung of the ladder (downscaled first under a size cap)."""
    if not codec_available(action.codec):
        raise LadderError(f"this Pillow build cannot write {action.codec}")
    image = resize_for(image, action)
    buffer = io.BytesIO()
    options: dict = {"quality": action.quality}
    if action.codec == "webp":
        options["method"] = 4
    if image.mode != "RGB":  # convert() copies even an RGB image: 20 ms at 12 MP
        image = image.convert("RGB")
    image.save(buffer, format=_PILLOW_FORMATS[action.codec], **options)
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
        """The ladder written back in `Ladder.parse` syntax, one group per run of a codec and size cap (order kept)."""
        groups = groupby(self.actions, key=lambda a: (a.codec, a.short_side))
        return ";".join(f"{codec}:{','.join(str(a.quality) for a in run)}" + (f"@{cap}" if cap else "")
                        for (codec, cap), run in groups)

    @property
    def has_size_caps(self) -> bool:
        """Whether some action may send fewer pixels than the upload has (else every choice encodes at full size)."""
        return any(action.short_side for action in self.actions)

    @property
    def runs(self) -> list[list[int]]:
        """Rung indices per codec and size cap, qualities ascending (answers are monotone along each), full size
        first, then the larger caps first (answers are monotone across them too)."""
        runs: dict[tuple[str, int], list[int]] = {}
        for index, action in enumerate(self.actions):
            runs.setdefault((action.codec, action.short_side), []).append(index)
        ordered = [sorted(run, key=lambda rung: self.actions[rung].quality) for run in runs.values()]
        return sorted(ordered, key=lambda run: (self.actions[run[0]].short_side > 0, -self.actions[run[0]].short_side))

    def at_floor(self, floor: int) -> tuple[int, ...]:
        """The rungs a quality floor leaves: those at least `floor` places up their own run (each run keeps at least
        its top rung). On a quality-only ladder, the rungs from `floor` up."""
        return tuple(sorted(rung for run in self.runs for rung in run[min(floor, len(run) - 1):]))

    def implied_by(self, rung: int, hit: bool) -> tuple[int, ...]:
        """The other rungs whose answer this rung's answer implies, answers being monotone in quality and size: a
        hit implies hits wherever the codec is the same and neither quality nor size is lower; a miss, misses
        wherever neither is higher."""
        action = self.actions[rung]

        def size(a: Action) -> float:
            return a.short_side or float("inf")

        if hit:
            return tuple(i for i, a in enumerate(self.actions) if i != rung and a.codec == action.codec
                         and a.quality >= action.quality and size(a) >= size(action))
        return tuple(i for i, a in enumerate(self.actions) if i != rung and a.codec == action.codec
                     and a.quality <= action.quality and size(a) <= size(action))

    @classmethod
    def parse(cls, spec: str) -> Ladder:
        """Parse `jpeg:5,15,25`, `jpeg:5,15;webp:10,30` or `jpeg:5,15,25;jpeg:10,25@256` (groups separated by
        `;`, each `codec:q1,q2,...` with an optional size cap `@SHORT_SIDE_PX`)."""
        actions = []
        for group in filter(None, (g.strip() for g in spec.split(";"))):
            body, _, cap = group.partition("@")
            codec, _, qualities = body.partition(":")
            if not qualities:
                raise LadderError(f"ladder group {group!r} needs the form codec:q1,q2,...[@short_side]")
            try:
                short_side = int(cap) if cap else 0
                codec = codec.strip().lower()
                actions += [Action(codec, int(q), short_side) for q in qualities.split(",") if q.strip()]
            except ValueError as exc:
                raise LadderError(f"ladder group {group!r}: {exc}") from exc
        return cls(tuple(actions))


DEFAULT_LADDER = Ladder(tuple(Action("jpeg", q) for q in DEFAULT_QUALITIES))
REFERENCE_ACTION = Action("jpeg", REFERENCE_QUALITY)
