"""The early exit: stop the probe after two of its five passes when the cheapest rung is surely the best one.

Four in five photos keep the backend's answer at the cheapest rung, and the probe's first two passes (the photo,
and the photo at the cheapest rung) often say so. A logistic screen reads what those passes and the two cheapest
rungs' sizes tell (`ProbeFeaturizer.first_look`) and estimates p, the chance the cheapest rung keeps the answer.
Under the known-cost head a dearer rung can win only by a higher hit probability, which is at most 1, so when

    p >= 1 - size_weight * (ratio(second cheapest) - ratio(cheapest))

no dearer rung could pay back its extra bytes whatever the Q-network would say of it, and the policy sends the
cheapest rung without the other three passes and size estimates. The daemon's dial lowers the size weight when
accuracy falls short, which raises this bar; its quality floor (a lowest rung above the cheapest) turns the exit off.

The screen is fitted at the end of training on the observations and real answers the training run already paid for
(the galloping search uploads every image's cheapest rung), and its arrays are stored beside the Q-network's in the
agent's weights, so the version covers them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adacompress.codec import Ladder
from adacompress.features import Featurizer, ProbeFeaturizer

PREFIX = "screen."
"""Names of the screen's arrays among an agent's weights."""
L2 = 1.0
"""Ridge on the standardised inputs: ten inputs, a few hundred to a few thousand photos."""


def screen_columns(probed_rungs: int) -> list[int]:
    """Where a probe observation holds the screen's inputs: the cheapest probed rung's four numbers, the photo's
    entropy and top-3, and the size ratios of the ladder's first two rungs (its two cheapest: see `can_screen`)."""
    ratios = 4 * probed_rungs + 4
    return [0, 1, 2, 3, ratios - 4, ratios - 3, ratios - 2, ratios - 1, ratios, ratios + 1]


def can_screen(head: str, ladder: Ladder, featurizer: Featurizer) -> bool:
    """Whether an early exit can be sure to pick the best rung: the known-cost head (the bar reads its size weight),
    a ladder without size caps (else a smaller size may undercut the cheapest quality) and a probe of at least two
    rungs (the screen reads its first two passes)."""
    return head == "known-cost" and not ladder.has_size_caps and isinstance(featurizer, ProbeFeaturizer) \
        and featurizer.rungs >= 2


@dataclass(frozen=True)
class Screen:
    """A logistic regression over the screen's inputs, standardised as in training."""

    weight: np.ndarray
    """One weight per input, then the bias."""
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, inputs: np.ndarray, hits: np.ndarray) -> Screen:
        """Fit P(the cheapest rung keeps the answer) on the screen inputs of training photos and their real answers."""
        mean, scale = inputs.mean(axis=0), inputs.std(axis=0) + 1e-6
        return cls(fit_logistic((inputs - mean) / scale, hits.astype(np.float64), L2), mean, scale)

    def hit_probability(self, inputs: np.ndarray) -> float:
        z = (np.asarray(inputs, dtype=np.float64) - self.mean) / self.scale
        return float(np.exp(-np.logaddexp(0.0, -(z @ self.weight[:-1] + self.weight[-1]))))  # no overflow

    @staticmethod
    def exits(hit_probability: float, size_weight: float, cheapest_ratios: tuple[float, float]) -> bool:
        """Whether no dearer rung could beat the cheapest under `size_weight` (see the module docstring)."""
        return hit_probability >= 1.0 - size_weight * (cheapest_ratios[1] - cheapest_ratios[0])

    def arrays(self) -> dict[str, np.ndarray]:
        return {PREFIX + "weight": self.weight, PREFIX + "mean": self.mean, PREFIX + "scale": self.scale}

    @classmethod
    def from_weights(cls, weights: dict[str, np.ndarray]) -> Screen | None:
        """The screen stored among an agent's weights, or None for an agent without one."""
        if PREFIX + "weight" not in weights:
            return None
        screen = cls(*(np.asarray(weights[PREFIX + name], dtype=np.float64) for name in ("weight", "mean", "scale")))
        if not screen.weight.shape == (len(screen.mean) + 1,) == (len(screen.scale) + 1,):
            raise ValueError(f"screen arrays of shapes {screen.weight.shape}, {screen.mean.shape}, "
                             f"{screen.scale.shape} do not fit together")
        return screen


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, steps: int = 30) -> np.ndarray:
    """Weights (bias last) of an L2-regularised logistic regression, by Newton's method."""
    design = np.column_stack([x, np.ones(len(x))])
    weights = np.zeros(design.shape[1])
    penalty = np.eye(design.shape[1]) * l2
    penalty[-1, -1] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-design @ weights))
        gradient = design.T @ (p - y) + penalty @ weights
        hessian = (design * (p * (1 - p))[:, None]).T @ design + penalty
        weights -= np.linalg.solve(hessian, gradient)
    return weights
