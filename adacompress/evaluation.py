"""Run a per-image choice of action over an image set and summarise what it cost and kept."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from adacompress.agents.policies import Policy, policy_from_spec
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


def evaluate_policy(table: OutcomeTable, policy: Policy, indices: list[int] | None = None) -> EvalResult:
    """`evaluate` through the serving path: `policy.decide` on each image, whose action the table scores.

    The decision's bytes come from the table's own memo, so the bytes scored are the bytes decided.
    """
    return evaluate(table, lambda i: table.rung_of(policy.decide(table.upload(i)).action), policy.name, indices)


def oracle_rung(table: OutcomeTable, index: int, codec: str | None = None) -> int:
    """The cheapest rung (of `codec`, or any) whose answer still hits; the largest when none does.

    It needs every rung's answer, so it bounds what any policy can reach; it cannot serve.
    """
    sizes = table.sizes(index)
    allowed = [a for a, action in enumerate(table.ladder.actions) if codec in (None, action.codec)]
    by_size = sorted(allowed, key=sizes.__getitem__)
    return next((a for a in by_size if table.outcome(index, a).hit), by_size[-1])


def evaluate_oracle(table: OutcomeTable, codec: str | None = None, indices: list[int] | None = None) -> EvalResult:
    return evaluate(table, lambda i: oracle_rung(table, i, codec), f"oracle:{codec}" if codec else "oracle", indices)


def evaluate_spec(table: OutcomeTable, spec: str, seed: int = 0) -> EvalResult:
    """A policy spec (`policies.policy_from_spec`) or the bound `oracle` / `oracle:CODEC`."""
    kind, _, codec = spec.partition(":")
    if kind == "oracle":
        return evaluate_oracle(table, codec or None)
    return evaluate_policy(table, policy_from_spec(spec, table.ladder, seed))


def format_table(results: list[EvalResult]) -> str:
    """A fixed-width table for terminals."""
    lines = [f"{'policy':<22}{'images':>7}{'bytes/ref':>11}{'accuracy':>10}{'mean KiB':>10}{'calls':>8}"]
    for r in results:
        lines.append(f"{r.policy:<22}{r.images:>7}{r.bytes_vs_reference:>11.3f}{r.accuracy:>10.3f}"
                     f"{r.mean_bytes / 1024:>10.2f}{r.backend_calls:>8}")
    return "\n".join(lines)
