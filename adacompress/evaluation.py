"""Run a per-image choice of action over an image set and summarise what it cost and kept."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from adacompress.errors import AdaCompressError
from adacompress.outcomes import OutcomeTable

ChooseAction = Callable[[int], int]
"""Maps an image index of the table to a ladder index."""


@dataclass
class EvalResult:
    """Summary of one policy over one image set; `to_json()` is the `eval --json` schema."""

    policy: str
    images: int
    bytes_vs_reference: float
    """Sum of uploaded bytes over sum of reference bytes."""
    accuracy: float
    """Fraction of images whose answer survived (hit rate)."""
    mean_bytes: float
    mean_reward: float
    backend_calls: int
    """Calls this evaluation paid for (cached answers are free)."""
    quality_histogram: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def evaluate(table: OutcomeTable, choose: ChooseAction, policy_name: str,
             indices: list[int] | None = None) -> EvalResult:
    """Upload every image at the chosen action and score it against the reference."""
    indices = list(range(len(table))) if indices is None else indices
    calls_before = table.backend.stats.calls
    sent = reference = hits = 0
    rewards = 0.0
    histogram: Counter[str] = Counter()
    for index in indices:
        outcome = table.outcome(index, choose(index))
        sent += outcome.bytes
        reference += outcome.reference_bytes
        hits += outcome.hit
        rewards += outcome.reward
        histogram[outcome.action.label] += 1
    n = max(len(indices), 1)
    order = {a.label: i for i, a in enumerate(table.ladder.actions)}
    return EvalResult(
        policy=policy_name,
        images=len(indices),
        bytes_vs_reference=sent / reference if reference else 0.0,
        accuracy=hits / n,
        mean_bytes=sent / n,
        mean_reward=rewards / n,
        backend_calls=table.backend.stats.calls - calls_before,
        quality_histogram={k: histogram[k] for k in sorted(histogram, key=order.__getitem__)},
    )


def evaluate_policy(table: OutcomeTable, policy, indices: list[int] | None = None) -> EvalResult:
    """`evaluate` for a `Policy`; agents get their own featurizer's view of each image."""
    own_ladder = getattr(policy, "ladder", None)
    if own_ladder is not None and table.ladder.actions[: len(own_ladder)] != own_ladder.actions:
        raise AdaCompressError(f"{policy.name} was trained on the ladder {own_ladder.spec}, "
                               f"not {table.ladder.spec}")
    if policy.needs_features:
        featurizer = policy.featurizer
        return evaluate(table, lambda i: policy.choose(table, i, featurizer.embed(table.images.load(i))),
                        policy.name, indices)
    return evaluate(table, lambda i: policy.choose(table, i), policy.name, indices)


def format_table(results: list[EvalResult]) -> str:
    """A fixed-width table for terminals."""
    lines = [f"{'policy':<22}{'images':>7}{'bytes/ref':>11}{'accuracy':>10}{'mean KiB':>10}{'calls':>8}"]
    for r in results:
        lines.append(f"{r.policy:<22}{r.images:>7}{r.bytes_vs_reference:>11.3f}{r.accuracy:>10.3f}"
                     f"{r.mean_bytes / 1024:>10.2f}{r.backend_calls:>8}")
    return "\n".join(lines)
