"""The agent's view of an image: EfficientNet-Lite0's 1280-d pooled embedding of the original.

The featurizer is deliberately not the backend's model: the backend stays a black box, and the
embedding only has to tell the policy how fragile an image is under compression.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from adacompress.cnn import FEATURE_DIM, shared_model

FEATURE_LOW, FEATURE_HIGH = 0.0, 6.0  # pooled ReLU6 activations


class Featurizer:
    """Embeds images in batches; `dim` is the observation size the agent sees."""

    dim = FEATURE_DIM

    def __init__(self, variant: str = "lite0") -> None:
        self.variant = variant
        self._model = shared_model(variant)

    def embed(self, image: Image.Image) -> np.ndarray:
        return self.embed_batch([image])[0]

    def embed_batch(self, images: list[Image.Image]) -> np.ndarray:
        """(N, 1280) float32 features for N images."""
        features, _ = self._model.run(images)
        return np.asarray(features, dtype=np.float32)
