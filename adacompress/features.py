"""The agent's view of an image, computed locally from the original (the backend stays a black box).

Two featurizers, chosen by name:
- `embedding`: EfficientNet-Lite0's 1280-d pooled features (AdaCompress used MobileNetV2's).
- `probe:SURROGATE` (`probe:lite1`, the default for training; plain `probe` means `probe:lite0`): a
  compact robustness probe. Each cheap rung of the ladder is encoded, decoded and shown to a local
  surrogate classifier: how much the surrogate's own answer moves tells how fragile the image is,
  and the local sizes tell what each rung costs. With a few hundred labelled images a 1280-d input
  overfits; this 31-d probe generalises (see docs/architecture.md for the numbers).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from adacompress.cnn import FEATURE_DIM, shared_model
from adacompress.codec import DEFAULT_LADDER, REFERENCE_ACTION, Ladder, encode
from adacompress.errors import AdaCompressError
from adacompress.images import decode

PROBE_RUNGS = 4
"""How many of the cheapest ladder rungs the probe compresses and re-classifies."""
DEFAULT_PROBE = "probe:lite1"
"""Lite1 as surrogate predicts a hidden model's answers better than Lite0 (docs/architecture.md)."""


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

    def embed(self, image: Image.Image) -> np.ndarray:
        return self.embed_batch([image])[0]

    def embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        """(N, dim) float32 features for N images."""
        features, _ = self._model.run(images)
        return np.asarray(features, dtype=np.float32)


class ProbeFeaturizer(Featurizer):
    """Surrogate robustness under the cheapest rungs, plus the size of every rung relative to the reference.

    Per probed rung: the surrogate's probability of its original top-1 class, whether its top-1
    survives, the KL divergence from the original prediction (clipped), and its top probability.
    Then the original's entropy and top-3 probabilities, then bytes(rung) / bytes(reference).
    """

    low, high = 0.0, 10.0

    def __init__(self, ladder: Ladder = DEFAULT_LADDER, variant: str = "lite0") -> None:
        super().__init__(variant)
        self.name = "probe" if variant == "lite0" else f"probe:{variant}"
        self.ladder = ladder
        self.rungs = min(PROBE_RUNGS, len(ladder))
        self.dim = 4 * self.rungs + 4 + len(ladder)

    def embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        return np.stack([self._probe(image) for image in images])

    def _probe(self, image: Image.Image) -> np.ndarray:
        uploads = {action: encode(image, action) for action in dict.fromkeys((*self.ladder.actions, REFERENCE_ACTION))}
        compressed = [decode(uploads[action].data) for action in self.ladder.actions[: self.rungs]]
        _, logits = self._model.run([image, *compressed])
        probs = _softmax(logits)
        original, top1 = probs[0], int(probs[0].argmax())
        log_original = np.log(original + 1e-12)
        rows = []
        for p in probs[1:]:
            kl = float((original * (log_original - np.log(p + 1e-12))).sum())
            rows += [p[top1], float(p.argmax() == top1), min(kl, self.high), p.max()]
        entropy = float(-(original * log_original).sum())
        sizes = [uploads[action].info.bytes for action in self.ladder.actions]
        reference = uploads[REFERENCE_ACTION].info.bytes
        ratios = np.minimum(np.asarray(sizes, np.float64) / reference, self.high)
        head = [min(entropy, self.high), *np.sort(original)[::-1][:3]]
        return np.asarray([*rows, *head, *ratios], dtype=np.float32)


def is_probe(name: str) -> bool:
    """Whether a featurizer name is a probe, whose observation ends with the rungs' size ratios."""
    return name == "probe" or name.startswith("probe:")


def make_featurizer(name: str, ladder: Ladder = DEFAULT_LADDER) -> Featurizer:
    """`embedding`, `probe` (Lite0 surrogate) or `probe:VARIANT` (e.g. `probe:lite1`)."""
    if name == "embedding":
        return Featurizer()
    if is_probe(name):
        return ProbeFeaturizer(ladder, name.partition(":")[2] or "lite0")  # cnn refuses unknown variants
    raise AdaCompressError(f"unknown featurizer {name!r}; use 'embedding', 'probe' or 'probe:VARIANT'")
