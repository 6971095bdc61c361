"""Size estimates: what each action would cost at full size, without encoding the full image.

Sizes are read off the upload's working copy (`Upload.working()`, a short side of 320 to 640 px):
for most web photos that is the image itself and the sizes are exact; for a 12 MP photo it is a
~0.15 MP copy, so estimating costs the same at any size and only the chosen rung is ever encoded at
full size. Ratios between rungs carry over from the copy; absolute bytes are scaled by the pixel
ratio. `bench/bench_decide.py` measures both errors against real full-size sizes.
"""

from __future__ import annotations

import numpy as np

from adacompress.codec import Action
from adacompress.upload import Upload

RATE_PIXEL_EXPONENT = 0.86
"""Bytes grow slower than pixels (a reduced copy packs more detail per pixel): full = copy * (pixel
ratio) ** 0.86, the median fitted on the sample photos reduced twofold, for the q=75 reference."""


def estimate_ratios(upload: Upload, actions: tuple[Action, ...], reference: Action) -> np.ndarray:
    """bytes(action) / bytes(reference) for each action, read off the working copy."""
    view = upload.working()
    reference_bytes = view.encoded(reference).info.bytes
    return np.array([view.encoded(a).info.bytes / reference_bytes for a in actions], dtype=np.float64)


def estimate_bytes(upload: Upload, action: Action) -> int:
    """Full-size bytes of `action`: exact when the working copy is the image, else scaled from the copy."""
    view = upload.working()
    return max(1, round(view.encoded(action).info.bytes * (upload.pixels / view.pixels) ** RATE_PIXEL_EXPONENT))
