"""The monotone search over quality and size caps: it finds each image's staircase exactly, in few calls.

The backend here is a real `VisionBackend` over real JPEG bytes whose answers follow a known staircase
(the lowest quality that keeps the answer at each short side), so the search can be checked exactly;
the same search against the real CNN is checked in tests/agents/test_training.py.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from adacompress.cloud_backends.base import Label, VisionBackend
from adacompress.codec import Action, Ladder, encode
from adacompress.images import ImageSet
from adacompress.outcomes import OutcomeTable
from tests.conftest import textured

QUALITIES = (5, 10, 15, 25, 35, 45, 55, 65, 75, 85, 95)
LADDER = Ladder.parse("jpeg:5,10,15,25,35,45,55,65,75,85,95;jpeg:5,10,15,25,35,45@256;jpeg:5,10,15,25,35@192;"
                      "jpeg:10,15,25@128")


class StaircaseBackend(VisionBackend):
    """Keeps the answer when the upload's JPEG quality reaches `needed[short side]` (None: never)."""

    name = "staircase"

    def __init__(self, needed: dict[int, int | None]) -> None:
        super().__init__()
        self.needed = needed
        sample = textured(0, (64, 64))
        self._quality_of = {self._tables(encode(sample, Action("jpeg", q)).data): q for q in QUALITIES}

    @staticmethod
    def _tables(data: bytes) -> tuple:
        return tuple(tuple(table) for table in Image.open(io.BytesIO(data)).quantization.values())

    def _recognize(self, image_bytes: bytes):
        quality = self._quality_of[self._tables(image_bytes)]
        needed = self.needed[min(Image.open(io.BytesIO(image_bytes)).size)]
        kept = needed is not None and quality >= needed
        return [Label("kept" if kept else "lost", 0.9)], {}


def expected_hits(needed: dict[int, int | None], full_side: int) -> list[bool]:
    sides = [min(a.short_side or full_side, full_side) for a in LADDER.actions]
    return [needed[side] is not None and a.quality >= needed[side] for a, side in zip(LADDER.actions, sides,
                                                                                        strict=True)]


@pytest.mark.parametrize("needed, most_calls", [
    ({480: 5, 256: 5, 192: 10, 128: 25}, 8),  # each size starts where the larger one survived
    ({480: 10, 256: 15, 192: 35, 128: None}, 8),  # @128's qualities all lost at @192 already: no call
    ({480: 25, 256: None, 192: None, 128: None}, 8),  # nothing survives @256: the smaller caps cost nothing
])
def test_the_search_finds_the_staircase_exactly(needed, most_calls):
    images = ImageSet([textured(3, (640, 480))])
    backend = StaircaseBackend(needed)
    table = OutcomeTable(images, backend, LADDER, monotone=True)
    assert table.hits(0) == expected_hits(needed, 480)
    assert backend.stats.calls <= most_calls
    exhaustive = OutcomeTable(images, StaircaseBackend(needed), LADDER)
    assert exhaustive.hits(0) == table.hits(0)
    assert exhaustive.backend.stats.calls == len(LADDER)  # the reference (jpeg:75) is a rung of the ladder

