"""The agent's view of an image, computed locally from the original (the backend stays a black box).

Two featurizers, chosen by name:
- `embedding`: EfficientNet-Lite0's 1280-d pooled features (AdaCompress used MobileNetV2's).
- `probe:SURROGATE` (`probe:lite1-int8`, the default for training: Lite1 in 8 bits, its passes at about
  half the CPU time of `probe:lite1`'s; plain `probe` means `probe:lite0`): a compact robustness probe.
  Each cheap rung of the ladder is encoded, decoded and shown to a local surrogate classifier: how much
  the surrogate's own answer moves tells how fragile the image is, and the local sizes tell what each rung
  costs. With a few hundred labelled images a 1280-d input overfits; this 31-d probe generalises (see
  docs/architecture.md for the numbers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from adacompress.cnn import FEATURE_DIM, shared_model
from adacompress.codec import DEFAULT_LADDER, REFERENCE_ACTION, Action, Ladder
from adacompress.errors import AdaCompressError
from adacompress.images import decode
from adacompress.rate import estimate_ratios
from adacompress.upload import Upload

PROBE_RUNGS = 4
"""How many cheap ladder rungs the probe compresses and re-classifies (`probed_actions` says which)."""
DEFAULT_FEATURIZER = "probe:lite1-int8"
"""What new agents see by default."""


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class Featurizer:
    """Pooled EfficientNet-Lite0 embedding of the original image."""

    name = "embedding"
    dim = FEATURE_DIM
    low, high = 0.0, 6.0  # pooled ReLU6 activations

    def __init__(self, variant: str = "lite0") -> None:
        self.variant = variant
        self._model = shared_model(variant)

    def observe(self, upload: Upload) -> np.ndarray:
        """The observation for one upload, float32 of shape (dim,)."""
        features, _ = self._model.run([upload.reduced(self._model.input_px).image])
        return np.asarray(features[0], dtype=np.float32)

    def embed(self, image: Image.Image) -> np.ndarray:
        """`observe` for a bare image."""
        return self.observe(Upload(image))


def probed_actions(ladder: Ladder, rungs: int = PROBE_RUNGS) -> tuple[Action, ...]:
    """The rungs the probe shows the surrogate: the `rungs` cheapest qualities of the largest size (full size
    when the ladder has it). On a ladder with size caps the capped rungs enter through their size ratios only:
    showing the surrogate each size's cheapest rung instead told a policy less (bench/results/size_study.json:
    0.208 of the reference bytes at 98% against 0.189 with the full-size views)."""
    largest = ladder.runs[0]
    return tuple(ladder[rung] for rung in largest[:rungs])


class ProbeFeaturizer(Featurizer):
    """Surrogate robustness under the cheap rungs, plus the size of every rung relative to the reference.

    Per probed rung: the surrogate's probability of its original top-1 class, whether its top-1
    survives, the KL divergence from the original prediction (clipped), and its top probability.
    Then the original's entropy and top-3 probabilities, then bytes(rung) / bytes(reference).
    """

    low, high = 0.0, 10.0

    def __init__(self, ladder: Ladder = DEFAULT_LADDER, variant: str = "lite0", rungs: int = PROBE_RUNGS) -> None:
        super().__init__(variant)
        self.name = "probe" if variant == "lite0" else f"probe:{variant}"
        if rungs != PROBE_RUNGS:
            self.name = f"probe:{variant}:{rungs}"
        self.ladder = ladder
        self.probed = probed_actions(ladder, rungs)
        self.rungs = len(self.probed)
        self.dim = 4 * self.rungs + 4 + len(ladder)

    def observe(self, upload: Upload, first: FirstLook | None = None) -> np.ndarray:
        """The whole observation; given the `first_look`, its two passes are not repeated (same numbers: onnxruntime
        computes each image of a batch alike)."""
        view = upload.working()
        shown = [view.image] if first is None else []
        shown += [decode(view.encoded(action).data) for action in self.probed[0 if first is None else 1:]]
        _, logits = self._model.run(shown)
        if first is not None:
            logits = np.concatenate([first.logits, logits])
        ratios = np.minimum(estimate_ratios(upload, self.ladder.actions, REFERENCE_ACTION), self.high)
        return np.asarray([*surrogate_numbers(_softmax(logits), self.high), *ratios], dtype=np.float32)

    def first_look(self, upload: Upload) -> FirstLook:
        """What the first two passes (the photo, and the photo at the cheapest probed rung) and the sizes of the
        ladder's first two rungs tell: the screen's input (`adacompress.agents.screen`), at two fifths of the passes."""
        view = upload.working()
        _, logits = self._model.run([view.image, decode(view.encoded(self.probed[0]).data)])
        partial = np.full(self.dim, np.nan, dtype=np.float32)
        numbers = surrogate_numbers(_softmax(logits), self.high)
        partial[:4], partial[4 * self.rungs:4 * self.rungs + 4] = numbers[:4], numbers[4:]
        ratios = estimate_ratios(upload, self.ladder.actions[:2], REFERENCE_ACTION)
        partial[len(partial) - len(self.ladder):][:2] = np.minimum(ratios, self.high)
        return FirstLook(logits, partial)


@dataclass(frozen=True)
class FirstLook:
    """The probe after its first two passes."""

    logits: np.ndarray
    """The surrogate's logits for the photo and for the photo at the cheapest probed rung."""
    partial: np.ndarray
    """The observation as far as those passes tell it (NaN where the rest of the probe is needed)."""


def surrogate_numbers(probs: np.ndarray, high: float = ProbeFeaturizer.high) -> list[float]:
    """The probe's surrogate part from the surrogate's softmax on the original (row 0) and each probed rung:
    per rung, its probability of the original's top-1 class, whether that top-1 survives, the KL divergence
    from the original (clipped at `high`) and its top probability; then the original's entropy and top-3."""
    original, top1 = probs[0], int(probs[0].argmax())
    log_original = np.log(original + 1e-12)
    rows = []
    for p in probs[1:]:
        kl = float((original * (log_original - np.log(p + 1e-12))).sum())
        rows += [p[top1], float(p.argmax() == top1), min(kl, high), p.max()]
    entropy = float(-(original * log_original).sum())
    return [*rows, min(entropy, high), *np.sort(original)[::-1][:3]]


def is_probe(name: str) -> bool:
    return name == "probe" or name.startswith("probe:")


def ends_with_size_ratios(name: str) -> bool:
    """Whether a featurizer's observation ends with the rungs' size ratios (what the known-cost head reads)."""
    return is_probe(name)


def make_featurizer(name: str, ladder: Ladder = DEFAULT_LADDER) -> Featurizer:
    """`embedding`, `probe` (Lite0 surrogate), `probe:VARIANT` (e.g. `probe:lite1`) or `probe:VARIANT:RUNGS`
    (fewer probed rungs, 0 for the original alone: cheaper, less telling; bench/results/observation.json)."""
    if name == "embedding":
        return Featurizer()
    if is_probe(name):
        _, variant, rungs = (name.split(":") + ["", ""])[:3]
        if rungs and not rungs.isdigit():
            raise AdaCompressError(f"unknown featurizer {name!r}: the rung count must be a whole number")
        return ProbeFeaturizer(ladder, variant or "lite0", int(rungs or PROBE_RUNGS))  # cnn refuses unknown variants
    raise AdaCompressError(f"unknown featurizer {name!r}; use 'embedding', 'probe' or 'probe:VARIANT[:RUNGS]'")
