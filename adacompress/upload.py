"""One image on its way to a backend: decoded once, reduced once, each action encoded at most once.

The featurizer, the outcome table and the uploader all read the same `Upload`, so nobody encodes
the same rung twice, and the bytes a `Decision` carries are exactly the bytes that get uploaded.
Reduced views are made by integer box reduction (`Image.reduce`), which costs a small fraction of
a decode at any size, so what the agent looks at costs the same for a thumbnail and a 12 MP photo.
"""

from __future__ import annotations

from PIL import Image

from adacompress.codec import Action, Encoded, encode, resize_for
from adacompress.images import DEFAULT_LIMITS, DecodeLimits, decode, to_rgb

WORKING_VIEW_PX = 320
"""Short side (at least) of the working copy that the probe and the size estimates read: about the scale
at which the local backend and the cloud models look at an upload. Photos with a short side under
640 px are their own working copy, so their probe encodings are the bytes that may get uploaded."""


class Upload:
    """An RGB image with memoized encodings and reduced views."""

    def __init__(self, image: Image.Image, name: str = "") -> None:
        self.image = image if image.mode == "RGB" else to_rgb(image)
        self.name = name
        self._encoded: dict[Action, Encoded] = {}
        self._reduced: dict[int, Upload] = {}
        self._capped: dict[int, Image.Image] = {}

    @classmethod
    def of(cls, upload: bytes | Image.Image | Upload, limits: DecodeLimits = DEFAULT_LIMITS) -> Upload:
        """Wrap raw upload bytes (decoded safely, or a typed `BadImage`), a PIL image, or pass an `Upload` through."""
        if isinstance(upload, Upload):
            return upload
        if isinstance(upload, Image.Image):
            return cls(upload)
        if isinstance(upload, bytes | bytearray | memoryview):
            return cls(decode(bytes(upload), limits))
        raise TypeError(f"an upload is bytes, a PIL image or an Upload, not {type(upload).__name__}")

    @property
    def pixels(self) -> int:
        return self.image.width * self.image.height

    def encoded(self, action: Action) -> Encoded:
        """The image at `action` (full size, or downscaled under its size cap), encoded on first use."""
        if action not in self._encoded:
            self._encoded[action] = encode(self.capped(action), action)
        return self._encoded[action]

    def capped(self, action: Action) -> Image.Image:
        """What `action` encodes: the image, or its copy downscaled to the action's size cap (made once per cap)."""
        if not action.short_side or min(self.image.size) <= action.short_side:
            return self.image
        if action.short_side not in self._capped:
            self._capped[action.short_side] = resize_for(self.image, action)
        return self._capped[action.short_side]

    def working(self) -> Upload:
        """The working copy (`WORKING_VIEW_PX`): what everything but the final encode looks at."""
        return self.reduced(WORKING_VIEW_PX)

    def reduced(self, short_side_px: int) -> Upload:
        """This image box-reduced by the largest integer factor that keeps its short side >= `short_side_px`.

        The reduced copy is itself an `Upload` (with its own encodings); at factor 1 it is this one, so
        a small photo's probe encodings are the very bytes that may get uploaded.
        """
        factor = max(1, min(self.image.size) // short_side_px)
        if factor == 1:
            return self
        if factor not in self._reduced:
            self._reduced[factor] = Upload(self.image.reduce(factor), self.name)
        return self._reduced[factor]
