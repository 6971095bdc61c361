"""Did the backend's answer survive compression, and what is that worth?

A hit compares the compressed upload's labels with the reference's (what the client would have
sent without us). The reward trades the hit against bytes relative to the reference:
`alpha * hit - beta * bytes / reference_bytes` (AdaCompress's reward at alpha = beta = 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from adacompress.cloud_backends.base import Recognition
from adacompress.errors import AdaCompressError


class HitRule(StrEnum):
    """How strictly the compressed answer must match the reference."""

    IN_LABELS = "in-labels"
    """The reference's top-1 label is anywhere among the compressed labels (the paper's test)."""
    TOP1 = "top1"
    """The compressed top-1 label equals the reference's top-1 label."""


@dataclass(frozen=True)
class Scoring:
    """Hit rule and reward weights; one object so env, eval and daemon agree."""

    rule: HitRule = HitRule.IN_LABELS
    min_score: float = 0.0
    """Compressed labels below this score do not count as matching."""
    alpha: float = 1.0
    """Weight of keeping the answer."""
    beta: float = 1.0
    """Weight of the bytes sent, relative to the reference's bytes."""

    def hit(self, reference: Recognition, compressed: Recognition) -> bool:
        return hit(reference, compressed, self.rule, self.min_score)

    def reward(self, is_hit: bool, bytes_sent: int, reference_bytes: int) -> float:
        return reward(is_hit, bytes_sent, reference_bytes, self.alpha, self.beta)


def hit(reference: Recognition, compressed: Recognition, rule: HitRule = HitRule.IN_LABELS,
        min_score: float = 0.0) -> bool:
    """Whether `compressed` keeps `reference`'s answer under `rule`.

    A reference with no labels is kept only by a compressed answer with none above `min_score`.
    """
    counted = [label for label in compressed.labels if label.score >= min_score]
    if reference.top1 is None:
        return not counted
    if rule is HitRule.TOP1:
        return bool(counted) and counted[0].name == reference.top1
    return any(label.name == reference.top1 for label in counted)


def reward(is_hit: bool, bytes_sent: int, reference_bytes: int, alpha: float = 1.0, beta: float = 1.0) -> float:
    """`alpha * hit - beta * bytes_sent / reference_bytes`."""
    if reference_bytes <= 0:
        raise AdaCompressError(f"reference size must be positive, got {reference_bytes} bytes")
    return alpha * float(is_hit) - beta * bytes_sent / reference_bytes
