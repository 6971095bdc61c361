"""What each (image, action) pair yields from a backend: bytes, hit and reward, each paid for once.

The env, the evaluator and the oracle all read outcomes through one `OutcomeTable`, so an
upload is sent at most once per run: sizes come from local encoding (free), and only the
reference and the compressed answers cost backend calls.

With `monotone=True` (training), answers are assumed monotone in quality (one that survives q=15
survives above it) and in size (one that survives at a 192 px cap survives at 256 px and at full
size). Per run of one codec and size cap, the lowest surviving quality is found by a galloping
search from the cheapest rung (1, 1, 2, 4, ... rungs up, then bisection), which costs one or two
calls for the usual image that survives a low quality and at most about 2*log2 of the run for the
rest. Runs are searched from the largest size down, each starting at the quality that survived one
size up (lower qualities already lost there), so each smaller size usually costs one call, and once
a size loses at every quality the smaller ones cost none. Other rungs are inferred; rungs actually
uploaded keep their real answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from adacompress.cloud_backends.base import Recognition, VisionBackend
from adacompress.codec import DEFAULT_LADDER, REFERENCE_ACTION, Action, Ladder
from adacompress.errors import AdaCompressError, BadImage
from adacompress.images import ImageSet
from adacompress.scoring import Scoring
from adacompress.upload import Upload

KEEP_UPLOADS = 4
"""Images whose encodings stay in memory: what one step needs (a 24 MP photo is ~70 MB decoded)."""


@dataclass(frozen=True)
class Outcome:
    """The result of uploading one image at one action."""

    action: Action
    bytes: int
    reference_bytes: int
    hit: bool
    reward: float


class OutcomeTable:
    """Lazily filled table of outcomes over an image set, a backend, a ladder and a reference."""

    def __init__(self, images: ImageSet, backend: VisionBackend, ladder: Ladder = DEFAULT_LADDER,
                 reference: Action = REFERENCE_ACTION, scoring: Scoring | None = None,
                 monotone: bool = False, resolved: dict[str, list[bool]] | None = None) -> None:
        self.images = images
        self.backend = backend
        self.ladder = ladder
        self.reference_action = reference
        self.scoring = scoring or Scoring()
        self._uploads: dict[int, Upload] = {}
        self._sizes: dict[int, tuple[int, ...]] = {}
        self._references: dict[int, tuple[Recognition, int]] = {}
        self._reference_bytes: dict[int, int] = {}
        self._answers: dict[tuple[int, Action], Recognition] = {}
        self.monotone = monotone
        self.resolved: dict[str, list[bool]] = dict(resolved or {})
        """Per image name, every rung's hit as resolved by bisection (monotone mode)."""
        self.unusable: dict[int, BadImage] = {}
        """Images that failed to decode, by index: asked again, they fail the same way without decoding again."""

    def __len__(self) -> int:
        return len(self.images)

    def upload(self, index: int) -> Upload:
        """Image `index` with its encodings memoized: the policy, the sizes and the backend share them."""
        if index in self.unusable:
            raise self.unusable[index].with_traceback(None)
        if index not in self._uploads:
            try:
                image = self.images.load(index)
            except BadImage as exc:
                self.unusable[index] = exc
                raise
            if len(self._uploads) >= KEEP_UPLOADS:
                self._uploads.pop(next(iter(self._uploads)))
            self._uploads[index] = Upload(image, self.images.name(index))
        return self._uploads[index]

    def rung_of(self, action: Action) -> int:
        """The table's index of `action`, or a clear error when the table's ladder lacks it."""
        try:
            return self.ladder.actions.index(action)
        except ValueError:
            raise AdaCompressError(f"{action.label} is not on this table's ladder {self.ladder.spec}") from None

    def sizes(self, index: int) -> tuple[int, ...]:
        """Bytes of every ladder action for image `index`; local encoding only, no backend call."""
        if index not in self._sizes:
            upload = self.upload(index)
            self._sizes[index] = tuple(upload.encoded(a).info.bytes for a in self.ladder.actions)
        return self._sizes[index]

    def reference(self, index: int) -> tuple[Recognition, int]:
        """The backend's answer for what the client would have sent, and its size in bytes."""
        if index not in self._references:
            encoded = self.upload(index).encoded(self.reference_action)
            self._references[index] = (self.backend.recognize(encoded.data), encoded.info.bytes)
        return self._references[index]

    def reference_bytes(self, index: int) -> int:
        """Size of the reference upload; local encoding only, no backend call."""
        if index not in self._reference_bytes:
            if index in self._references:
                self._reference_bytes[index] = self._references[index][1]
            else:
                self._reference_bytes[index] = self.upload(index).encoded(self.reference_action).info.bytes
        return self._reference_bytes[index]

    def answer(self, index: int, action: Action) -> Recognition:
        key = (index, action)
        if key not in self._answers:
            if action == self.reference_action:
                self._answers[key] = self.reference(index)[0]
            else:
                self._answers[key] = self.backend.recognize(self.upload(index).encoded(action).data)
        return self._answers[key]

    def outcome(self, index: int, action_index: int) -> Outcome:
        action = self.ladder[action_index]
        reference_bytes = self.reference_bytes(index)
        size = self.sizes(index)[action_index]
        if self.monotone and not self.known(index, action_index):
            is_hit = self.hits(index)[action_index]
        else:
            is_hit = self._real_hit(index, action_index)
        return Outcome(action, size, reference_bytes, is_hit, self.scoring.reward(is_hit, size, reference_bytes))

    def hits(self, index: int) -> list[bool]:
        """Every rung's hit for image `index`: uploaded each, or searched and inferred in monotone mode."""
        if not self.monotone:
            return [self.outcome(index, a).hit for a in range(len(self.ladder))]
        name = self.images.name(index)
        if name not in self.resolved:
            self.resolved[name] = self._search(index)
        return self.resolved[name]

    def _real_hit(self, index: int, action_index: int) -> bool:
        return self.scoring.hit(self.reference(index)[0], self.answer(index, self.ladder[action_index]))

    def _search(self, index: int) -> list[bool]:
        actions = self.ladder.actions
        hits: list[bool] = [False] * len(actions)
        survived_at: dict[str, int | None] = {}
        """Per codec, the lowest surviving quality one size up (None: nothing survived there)."""
        for run in self.ladder.runs:
            codec = actions[run[0]].codec
            floor = survived_at.get(codec, 0)
            first = len(run) if floor is None else self._search_run(index, run, floor)
            survived_at[codec] = actions[run[first]].quality if first < len(run) else None
            for position, rung in enumerate(run):
                hits[rung] = self._real_hit(index, rung) if self.known(index, rung) else position >= first
        return hits

    def _search_run(self, index: int, run: list[int], floor_quality: int) -> int:
        """Position in `run` of its lowest surviving rung (len(run): none); qualities under `floor_quality` count as
        lost (they were lost one size up)."""
        actions = self.ladder.actions
        lo = max((p for p, rung in enumerate(run) if actions[rung].quality < floor_quality), default=-1)
        hi = run.index(actions.index(self.reference_action)) if self.reference_action in (actions[r] for r in run) \
            else len(run)
        for position, rung in enumerate(run[:hi + 1]):  # answers already paid for narrow the search for free
            if self.known(index, rung):
                if self._real_hit(index, rung):
                    hi = min(hi, position)
                else:
                    lo = max(lo, position)
        lo = min(lo, hi - 1)  # non-monotone evidence: trust the lowest real hit
        gap, probes = 1, 0
        while hi - lo > 1:
            probe = min(lo + gap, hi - 1)
            if self._real_hit(index, run[probe]):
                hi = probe
                break
            lo, probes = probe, probes + 1
            gap = gap * 2 if probes >= 2 else 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._real_hit(index, run[mid]):
                hi = mid
            else:
                lo = mid
        return hi

    def known(self, index: int, action_index: int) -> bool:
        """Whether the outcome is already paid for (no backend call needed)."""
        return index in self._references and (index, self.ladder[action_index]) in self._answers
