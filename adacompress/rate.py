"""Size estimates: what each action would cost at full size, without encoding the full image.

Sizes are read off the upload's working copy (`Upload.working()`, a short side of 320 to 640 px):
for most web photos that is the image itself and the sizes are exact; for a 12 MP photo it is a
~0.15 MP copy, so estimating costs the same at any size and only the chosen rung is ever encoded at
full size. An action whose size cap lies at or under the working copy's short side sends the same
pixel count either way, so its size is read off the copy directly; other sizes are scaled by the
pixel ratio. `bench/bench_decide.py` measures the errors against real full-size sizes.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from adacompress.codec import Action
from adacompress.upload import Upload

RATE_PIXEL_EXPONENT = 0.86
"""Bytes grow slower than pixels (a reduced copy packs more detail per pixel): full = copy * (pixel
ratio) ** 0.86, the median fitted on the sample photos reduced twofold, for the q=75 reference."""


def estimate_bytes(upload: Upload, action: Action) -> int:
    """Bytes of `action` for this upload: exact when the working copy is the image, else read or scaled off the copy."""
    view = upload.working()
    if view is upload:
        return upload.encoded(action).info.bytes
    width, height = action.target_size(upload.size)
    if action.short_side and action.short_side <= min(view.image.size):
        return view.encoded(action).info.bytes
    uncapped = replace(action, short_side=0)
    scale = width * height / view.pixels
    return max(1, round(view.encoded(uncapped).info.bytes * scale ** RATE_PIXEL_EXPONENT))


def estimate_ratios(upload: Upload, actions: tuple[Action, ...], reference: Action) -> np.ndarray:
    """bytes(action) / bytes(reference) for each action, as `estimate_bytes` reads them."""
    reference_bytes = estimate_bytes(upload, reference)
    return np.array([estimate_bytes(upload, a) / reference_bytes for a in actions], dtype=np.float64)
