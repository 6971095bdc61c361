"""The Gymnasium environment: one image per episode, choose its compression, get the API's verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from PIL import Image

from adacompress.cloud_backends.acceptance import check_ladder
from adacompress.cloud_backends.base import VisionBackend
from adacompress.cloud_backends.registry import create_backend
from adacompress.codec import DEFAULT_LADDER, REFERENCE_ACTION, Action, Ladder
from adacompress.features import Featurizer
from adacompress.images import ImageSet
from adacompress.outcomes import OutcomeTable
from adacompress.scoring import Scoring


class JpegQualityEnv(gym.Env[np.ndarray, np.int64]):
    """
    ## Description
    Each episode is one image. The agent sees a fixed embedding of the original image and picks a
    rung of the compression ladder (JPEG quality 5, 15, ..., 95 by default). The image is encoded
    at that rung and sent to a vision backend; the answer is compared with the backend's answer for
    the reference upload (JPEG quality 75 by default: what the client would have sent without us).
    Images are independent, so this is a contextual bandit: the episode ends after one step.

    ## Action Space
    `Discrete(len(ladder))`: index into the ladder, ordered as given (cheapest first by default). A rung
    may cap the size too (`jpeg:25@256`); a ladder with a rung the backend cannot take raises `LadderError`.

    ## Observation Space
    `Box(0, 6, (1280,), float32)`: EfficientNet-Lite0's pooled features of the original image
    (default); `featurizer=ProbeFeaturizer()` gives the agent's compact robustness probe instead.

    ## Rewards
    `alpha * hit - beta * bytes / reference_bytes` (see `adacompress.scoring`); alpha = beta = 1.

    ## Starting State
    `reset()` serves the next image of a seeded permutation of the image set (all images are
    served once before any repeats); `reset(options={"index": i})` serves image `i`.

    ## Episode End
    `terminated=True` after every step; never truncated.

    ## Arguments
    - `images`: a folder, a list of paths or PIL images, or an `ImageSet`.
    - `backend`: a `VisionBackend` or a registry spec (`"local"`, `"local:lite0"`, `"rekognition"`).
    - `ladder`, `reference`: the actions and the reference action (`adacompress.codec`).
    - `scoring`: hit rule and reward weights (`adacompress.scoring.Scoring`).
    - `featurizer`: what the agent sees (`adacompress.features`); default the 1280-d embedding.
    - `shuffle`: serve images in a seeded random order (default) or in order.
    - `infer_monotone`: score unseen rungs by bisection, assuming answers are monotone in the ladder
      (training: about log2(len(ladder)) calls per image instead of one per rung).

    Backend answers are cached per (image, action), so revisiting a pair costs no call.

    ## Version History
    - v0: first release.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        images: str | Path | list | ImageSet,
        backend: str | VisionBackend = "local",
        ladder: Ladder = DEFAULT_LADDER,
        reference: Action = REFERENCE_ACTION,
        scoring: Scoring | None = None,
        featurizer: Featurizer | None = None,
        shuffle: bool = True,
        infer_monotone: bool = False,
    ) -> None:
        if isinstance(images, ImageSet):
            image_set = images
        elif isinstance(images, str | Path):
            image_set = ImageSet.from_folder(images)
        else:
            image_set = ImageSet([Path(i) if isinstance(i, str) else i for i in images])
        self.backend = create_backend(backend) if isinstance(backend, str) else backend
        check_ladder([*ladder.actions, reference], self.backend)  # refused before any upload, naming the action
        self.table = OutcomeTable(image_set, self.backend, ladder, reference, scoring, monotone=infer_monotone)
        self.featurizer = featurizer or Featurizer()
        self.shuffle = shuffle
        self.action_space = spaces.Discrete(len(ladder))
        self.observation_space = spaces.Box(
            self.featurizer.low, self.featurizer.high, (self.featurizer.dim,), np.float32
        )
        self._features: dict[int, np.ndarray] = {}
        self._order: list[int] = []
        self._cursor = 0
        self._index: int | None = None

    @property
    def ladder(self) -> Ladder:
        return self.table.ladder

    def features(self, index: int) -> np.ndarray:
        """Observation for image `index`, computed once."""
        if index not in self._features:
            self._features[index] = self.featurizer.observe(self.table.upload(index))
        return self._features[index]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        n = len(self.table)
        if options and "index" in options:
            self._index = int(options["index"]) % n
        else:
            if seed is not None or self._cursor >= len(self._order):
                self._order = list(self.np_random.permutation(n)) if self.shuffle else list(range(n))
                self._cursor = 0
            self._index = int(self._order[self._cursor])
            self._cursor += 1
        return self.features(self._index).copy(), {"image": self.table.images.name(self._index)}

    def step(self, action):
        if self._index is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        outcome = self.table.outcome(self._index, int(action))
        info = {
            "image": self.table.images.name(self._index),
            "index": self._index,
            "action": outcome.action.label,
            "bytes": outcome.bytes,
            "reference_bytes": outcome.reference_bytes,
            "hit": outcome.hit,
        }
        return self.features(self._index).copy(), outcome.reward, True, False, info

    def render(self) -> Image.Image | None:
        return None
