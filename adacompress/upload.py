"""One image on its way to a backend: decoded once, reduced once, each action encoded at most once.

The featurizer, the outcome table and the uploader all read the same `Upload`, so nobody encodes
the same rung twice, and the bytes a `Decision` carries are exactly the bytes that get uploaded.
Reduced views are made by integer box reduction (`Image.reduce`), which costs a small fraction of
a decode at any size, so what the agent looks at costs the same for a thumbnail and a 12 MP photo.
When the ladder has size caps, a large JPEG upload is first decoded in draft mode (1/2 to 1/8 scale,
every byte still read and checked) to make the working copy, and decoded at full size only when an
action needs full-size pixels: a decision whose size cap lies under the working copy never pays for
the full decode. Without caps the full decode is certain, so it comes first and the working copy is
reduced from it.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import ExifTags, Image

from adacompress.codec import Action, Encoded, encode, resize_for
from adacompress.images import DEFAULT_LIMITS, DecodeLimits, decode, to_rgb

_TURNED = (5, 6, 7, 8)
"""EXIF orientations that swap width and height."""

WORKING_VIEW_PX = 320
"""Short side (at least) of the working copy that the probe and the size estimates read: about the scale
at which the local backend and the cloud models look at an upload. Photos with a short side under
640 px are their own working copy, so their probe encodings are the bytes that may get uploaded."""


class Upload:
    """An RGB image with memoized encodings and reduced views."""

    def __init__(self, image: Image.Image, name: str = "") -> None:
        self._image: Image.Image | None = image if image.mode == "RGB" else to_rgb(image)
        self.size: tuple[int, int] = self._image.size
        """Width and height at full size (known before any full decode)."""
        self.name = name
        self._decode_full: Callable[[], Image.Image] | None = None
        self._draft: Upload | None = None
        self._encoded: dict[Action, Encoded] = {}
        self._reduced: dict[int, Upload] = {}
        self._capped: dict[int, Image.Image] = {}

    @classmethod
    def of(cls, upload: bytes | Image.Image | Upload, limits: DecodeLimits = DEFAULT_LIMITS,
           defer_full_decode: bool = True) -> Upload:
        """Wrap raw upload bytes (decoded safely, or a typed `BadImage`), a PIL image, or pass an `Upload` through.

        `defer_full_decode=False` is for callers that will encode at full size whatever they choose (a ladder
        without size caps): one full decode and a box reduction cost about half a draft decode plus a full one
        (12 MP: 46 against 87 ms), because both decodes read every coefficient."""
        if isinstance(upload, Upload):
            return upload
        if isinstance(upload, Image.Image):
            return cls(upload)
        if isinstance(upload, bytes | bytearray | memoryview):
            data = bytes(upload)
            size = _large_jpeg_size(data) if defer_full_decode else None
            return cls._deferred(data, size, limits) if size else cls(decode(data, limits))
        raise TypeError(f"an upload is bytes, a PIL image or an Upload, not {type(upload).__name__}")

    @classmethod
    def _deferred(cls, data: bytes, size: tuple[int, int], limits: DecodeLimits) -> Upload:
        """A large JPEG held as its draft-decoded working copy, the full decode waiting for an action that needs it."""
        draft = cls(decode(data, limits, draft_short_side_px=WORKING_VIEW_PX))  # a bad upload fails here, typed
        upload = cls(draft.image)
        upload._image, upload.size = None, size
        upload._draft = draft.reduced(WORKING_VIEW_PX)
        upload._decode_full = lambda: decode(data, limits)
        return upload

    @property
    def image(self) -> Image.Image:
        """The full-size image (decoded on first use for a large JPEG upload)."""
        if self._image is None:
            assert self._decode_full is not None
            self._image, self._decode_full = self._decode_full(), None
        return self._image

    @property
    def full_decoded(self) -> bool:
        """Whether the full-size pixels exist yet (always, except for a large JPEG no full-size action has needed)."""
        return self._image is not None

    @property
    def pixels(self) -> int:
        return self.size[0] * self.size[1]

    def encoded(self, action: Action) -> Encoded:
        """The image at `action` (full size, or downscaled under its size cap), encoded on first use."""
        if action not in self._encoded:
            self._encoded[action] = encode(self.capped(action), action)
        return self._encoded[action]

    def capped(self, action: Action) -> Image.Image:
        """What `action` encodes: the image, or its copy downscaled to the action's size cap (made once per cap,
        from the working copy when the cap lies under it and the full image is not decoded)."""
        if not action.short_side or min(self.size) <= action.short_side:
            return self.image
        if action.short_side not in self._capped:
            under_draft = self._draft is not None and not self.full_decoded and \
                action.short_side <= min(self._draft.size)
            self._capped[action.short_side] = self._draft.capped(action) if under_draft else \
                resize_for(self.image, action)
        return self._capped[action.short_side]

    def working(self) -> Upload:
        """The working copy (`WORKING_VIEW_PX`): what everything but the final encode looks at."""
        return self._draft if self._draft is not None else self.reduced(WORKING_VIEW_PX)

    def reduced(self, short_side_px: int) -> Upload:
        """This image box-reduced by the largest integer factor that keeps its short side >= `short_side_px`.

        The reduced copy is itself an `Upload` (with its own encodings); at factor 1 it is this one, so
        a small photo's probe encodings are the very bytes that may get uploaded.
        """
        if self._draft is not None and short_side_px <= min(self._draft.size):
            return self._draft.reduced(short_side_px)
        factor = max(1, min(self.size) // short_side_px)
        if factor == 1:
            return self
        if factor not in self._reduced:
            self._reduced[factor] = Upload(self.image.reduce(factor), self.name)
        return self._reduced[factor]


def _large_jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The upright size of a JPEG worth a draft decode (short side at least twice the working copy's), else None.

    Only the header is read; anything unusual returns None and goes through the full `decode`, which names the
    defect."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            if header.format != "JPEG":
                return None
            width, height = header.size
            if header.getexif().get(ExifTags.Base.Orientation) in _TURNED:
                width, height = height, width
    except Exception:  # noqa: BLE001 - decode() reports the same bytes with a typed error
        return None
    return (width, height) if min(width, height) >= 2 * WORKING_VIEW_PX else None
