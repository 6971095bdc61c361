"""Whether a backend can take every action of a ladder, decided before the first upload.

An action the provider refuses (WebP to Rekognition, a 48 px cap to an API whose sides start at
80 px) would fail on every image, each failure after the encoding and some after a billed call,
so a ladder is checked once, against the backend's `limits`, where it meets the backend. Only what
the action itself decides is checked: its codec and its size cap. Whether a full-size image fits
the provider's largest side or byte count depends on the image, and `limits.check_image` answers
that per upload.
"""

from __future__ import annotations

from collections.abc import Iterable

from adacompress.cloud_backends.base import VisionBackend
from adacompress.cloud_backends.limits import ImageLimits
from adacompress.codec import Action, Ladder, LadderError, codec_available

__all__ = ["check_actions", "check_ladder", "refusal"]


def refusal(action: Action, limits: ImageLimits | None, backend_name: str) -> str | None:
    """Why `backend_name`, accepting `limits` (None: anything Pillow writes), cannot take `action`; None if it can."""
    refused = f"{action.label} cannot go to {backend_name}"
    if not codec_available(action.codec):
        return f"{refused}: this Pillow build cannot write {action.codec}"
    if limits is None:
        return None
    if action.pillow_format not in limits.formats:
        return f"{refused}: it accepts {', '.join(sorted(limits.formats))}"
    if action.short_side and action.short_side < limits.min_side_px:
        return f"{refused}: its short side must be at least {limits.min_side_px} px"
    return None


def check_ladder(ladder_or_actions: Ladder | Iterable[Action], backend: VisionBackend, owner: str = "") -> None:
    """Raise `LadderError` naming the first action `backend` cannot take (and the others refused), or return.

    Pass the reference action too (`[*ladder.actions, reference]`): it is uploaded as well. `owner`, when
    given, names whose actions they are at the head of the error (`agent my-agent`, `policy fixed:webp:30`).
    """
    actions = ladder_or_actions.actions if isinstance(ladder_or_actions, Ladder) else ladder_or_actions
    check_actions(actions, backend.limits, backend.name, owner)


def check_actions(actions: Iterable[Action], limits: ImageLimits | None, backend_name: str, owner: str = "") -> None:
    """`check_ladder` against bare `limits`, for a destination that is not a backend (None: Pillow's codecs)."""
    refused = {a: r for a in dict.fromkeys(actions) if (r := refusal(a, limits, backend_name)) is not None}
    if not refused:
        return
    first, *others = refused
    also = f" (also refused: {', '.join(a.label for a in others)})" if others else ""
    raise LadderError(f"{owner + ': ' if owner else ''}{refused[first]}{also}; "
                      f"take {'them' if others else 'it'} off the ladder")
