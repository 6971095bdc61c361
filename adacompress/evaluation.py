"""Run per-image choices of action over an image set and summarise what each cost and kept."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

from adacompress.agents.policies import Policy, policy_from_spec
from adacompress.codec import Action, Ladder
from adacompress.errors import BadImage
from adacompress.outcomes import Outcome, OutcomeTable

ChooseAction = Callable[[int], int]
"""Maps an image index of the table to a ladder index."""


class Chooser(NamedTuple):
    """A named way of choosing each image's rung: a policy or an oracle."""

    name: str
    choose: ChooseAction


@dataclass
class EvalResult:
    """Summary of one policy over one image set; `to_json()` is the `eval --json` schema."""

    policy: str
    images: int
    """Images scored (the skipped ones are not)."""
    bytes_vs_reference: float
    """Sum of uploaded bytes over sum of reference bytes."""
    accuracy: float
    """Fraction of images whose answer survived (hit rate)."""
    mean_bytes: float
    mean_reward: float
    backend_calls: int
    """Calls this evaluation paid for (cached answers are free)."""
    quality_histogram: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    """Images left out, each `{"image", "code", "message"}`: files that do not decode within the limits,
    or uploads the backend refused."""

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class _Tally:
    """One chooser's running sums while `evaluate` walks the images."""

    name: str
    images: int = 0
    sent: int = 0
    reference: int = 0
    hits: int = 0
    rewards: float = 0.0
    calls: int = 0
    histogram: Counter[str] = field(default_factory=Counter)
    skipped: list[dict[str, str]] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.images += 1
        self.sent += outcome.bytes
        self.reference += outcome.reference_bytes
        self.hits += outcome.hit
        self.rewards += outcome.reward
        self.histogram[outcome.action.label] += 1

    def result(self, ladder: Ladder) -> EvalResult:
        n = max(self.images, 1)
        order = {a.label: i for i, a in enumerate(ladder.actions)}
        return EvalResult(
            policy=self.name,
            images=self.images,
            bytes_vs_reference=self.sent / self.reference if self.reference else 0.0,
            accuracy=self.hits / n,
            mean_bytes=self.sent / n,
            mean_reward=self.rewards / n,
            backend_calls=self.calls,
            quality_histogram={k: self.histogram[k] for k in sorted(self.histogram, key=order.__getitem__)},
            skipped=self.skipped,
        )


def evaluate(table: OutcomeTable, choosers: Sequence[Chooser], indices: Iterable[int] | None = None,
             strict: bool = False) -> list[EvalResult]:
    """Upload every image at each chooser's action and score it against the reference.

    Images go in the outer loop, so each is decoded and encoded once for all choosers, and the calls
    each chooser pays are the answers no earlier chooser asked for. A bad image (one that does not decode
    within the limits, or whose upload the backend refuses) is left out and listed in the result's
    `skipped`; with `strict`, the first one raises its error, naming the image.
    """
    tallies = [_Tally(chooser.name) for chooser in choosers]
    for index in range(len(table)) if indices is None else indices:
        for chooser, tally in zip(choosers, tallies, strict=True):
            calls_before = table.backend.stats.calls
            try:
                tally.add(table.outcome(index, chooser.choose(index)))
            except BadImage as exc:
                name = table.images.name(index)
                if strict:
                    raise type(exc)(f"{name}: {exc}") from exc
                tally.skipped.append({"image": name, "code": exc.code, "message": str(exc)})
            finally:
                tally.calls += table.backend.stats.calls - calls_before
    return [tally.result(table.ladder) for tally in tallies]


def policy_chooser(table: OutcomeTable, policy: Policy) -> Chooser:
    """The serving path: `policy.decide` on each image, whose action the table scores.

    The decision's bytes come from the table's own memo, so the bytes scored are the bytes decided.
    """
    return Chooser(policy.name, lambda i: table.rung_of(policy.decide(table.upload(i)).action))


def in_oracle_scope(action: Action, scope: str | None) -> bool:
    """Whether an oracle over `scope` may pick `action`: None (any rung), `jpeg` (JPEG at full size: the
    quality-only bound) or `jpeg+size` (JPEG at any size cap)."""
    if scope is None:
        return True
    codec, sized = scope.removesuffix("+size"), scope.endswith("+size")
    return action.codec == codec and (sized or not action.short_side)


def oracle_rung(table: OutcomeTable, index: int, scope: str | None = None) -> int:
    """The cheapest rung (within `scope`, see `in_oracle_scope`) whose answer still hits; the largest when none does.

    It needs every rung's answer, so it bounds what any policy can reach; it cannot serve.
    """
    sizes = table.sizes(index)
    allowed = [a for a, action in enumerate(table.ladder.actions) if in_oracle_scope(action, scope)]
    by_size = sorted(allowed, key=sizes.__getitem__)
    return next((a for a in by_size if table.outcome(index, a).hit), by_size[-1])


def oracle_chooser(table: OutcomeTable, scope: str | None = None) -> Chooser:
    return Chooser(f"oracle:{scope}" if scope else "oracle", lambda i: oracle_rung(table, i, scope))


def spec_chooser(table: OutcomeTable, spec: str, seed: int = 0) -> Chooser:
    """A policy spec (`policies.policy_from_spec`) or the bound `oracle` / `oracle:CODEC` / `oracle:CODEC+size`."""
    kind, _, scope = spec.partition(":")
    if kind == "oracle":
        return oracle_chooser(table, scope or None)
    return policy_chooser(table, policy_from_spec(spec, table.ladder, seed))


def evaluate_policy(table: OutcomeTable, policy: Policy, indices: Iterable[int] | None = None) -> EvalResult:
    return evaluate(table, [policy_chooser(table, policy)], indices)[0]


def evaluate_oracle(table: OutcomeTable, scope: str | None = None,
                    indices: Iterable[int] | None = None) -> EvalResult:
    return evaluate(table, [oracle_chooser(table, scope)], indices)[0]


def evaluate_spec(table: OutcomeTable, spec: str, seed: int = 0) -> EvalResult:
    return evaluate(table, [spec_chooser(table, spec, seed)])[0]


def skipped_images(results: Iterable[EvalResult]) -> list[dict[str, str]]:
    """Every image some result left out, once each, in the order met."""
    first: dict[str, dict[str, str]] = {}
    for result in results:
        for entry in result.skipped:
            first.setdefault(entry["image"], entry)
    return list(first.values())


def format_table(results: list[EvalResult]) -> str:
    """A fixed-width table for terminals."""
    lines = [f"{'policy':<22}{'images':>7}{'skipped':>8}{'bytes/ref':>11}{'accuracy':>10}{'mean KiB':>10}"
             f"{'calls':>8}"]
    for r in results:
        lines.append(f"{r.policy:<22}{r.images:>7}{len(r.skipped):>8}{r.bytes_vs_reference:>11.3f}"
                     f"{r.accuracy:>10.3f}{r.mean_bytes / 1024:>10.2f}{r.backend_calls:>8}")
    return "\n".join(lines)
