"""`adacompress bench`: the rate-accuracy picture on one backend.

Every fixed JPEG quality, at full size and at each size cap an agent's ladder uses (the scale
curves), WebP and AVIF at several qualities (each where this Pillow writes it and the backend
accepts it), the per-image oracles (JPEG quality only, JPEG quality x size, any action) and each
agent, as `bench.json` and `bench.png` (bytes relative to the q=75 reference against accuracy). An
agent "dominates" when every fixed JPEG action, at any size, with equal or higher accuracy sends
more bytes. Bad images are skipped and named, as
in `eval`; `bench.json` has each row's `skipped` and the backend's `cost`. An agent whose actions
the backend cannot take is refused before any upload.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path

from adacompress.agents.policies import FixedPolicy, load_policy
from adacompress.agents.pretrained import shipped_agents
from adacompress.cloud_backends.acceptance import check_ladder, refusal
from adacompress.cloud_backends.base import VisionBackend
from adacompress.cloud_backends.cost import cost_report
from adacompress.codec import DEFAULT_LADDER, REFERENCE_ACTION, Action, Ladder
from adacompress.commands._common import (
    add_data_args,
    add_report_args,
    backend_from_args,
    check_usable,
    cost_line,
    load_images,
    print_skips,
    progress,
    scoring_from_args,
)
from adacompress.evaluation import EvalResult, evaluate, format_table, oracle_chooser, policy_chooser
from adacompress.outcomes import OutcomeTable

OTHER_CODEC_QUALITIES = (5, 15, 25, 50, 75, 95)


def configure(parser: argparse.ArgumentParser) -> None:
    add_data_args(parser)
    parser.add_argument("--out", type=Path, required=True, help="folder for bench.json and bench.png")
    parser.add_argument("--agent", action="append", default=None,
                        help="pretrained:NAME or agent .zip (repeatable; default: every shipped agent "
                             "trained with this hit rule)")
    add_report_args(parser)


def bench_ladder(backend: VisionBackend, caps: Iterable[int] = ()) -> Ladder:
    """The JPEG ladder, again at each size cap in `caps` (largest first), then each other codec's qualities that
    `backend` can take."""
    capped = [Action("jpeg", a.quality, cap) for cap in sorted(set(caps), reverse=True) for a in DEFAULT_LADDER]
    extra = [Action(codec, q) for codec in ("webp", "avif") for q in OTHER_CODEC_QUALITIES]
    accepted = [a for a in extra if refusal(a, backend.limits, backend.name) is None]
    return Ladder(DEFAULT_LADDER.actions + tuple(capped) + tuple(accepted))


def dominates(agent: EvalResult, fixed: list[EvalResult]) -> bool:
    """Fewer bytes than every fixed quality of equal or higher accuracy."""
    return all(agent.bytes_vs_reference < f.bytes_vs_reference for f in fixed if f.accuracy >= agent.accuracy)


def run(args: argparse.Namespace) -> int:
    scoring = scoring_from_args(args)
    backend = backend_from_args(args, [*DEFAULT_LADDER.actions, REFERENCE_ACTION])
    agent_specs = args.agent
    if agent_specs is None:
        agent_specs = [f"pretrained:{name}" for name in shipped_agents()]
    agents = [load_policy(spec) for spec in agent_specs]
    agents = [a for a in agents if args.agent is not None or a.scoring.rule == scoring.rule]
    for agent in agents:
        check_ladder([*agent.ladder.actions, agent.reference], backend, owner=agent.name)
    caps = {a.short_side for agent in agents for a in agent.ladder.actions if a.short_side}
    ladder = bench_ladder(backend, caps)
    images = load_images(args.images, args.subset, args.reduced_decode_px)
    table = OutcomeTable(images, backend, ladder, REFERENCE_ACTION, scoring)
    oracle_choosers = [oracle_chooser(table, "jpeg")]
    if caps:
        oracle_choosers.append(oracle_chooser(table, "jpeg+size"))
    if any(a.codec != "jpeg" for a in ladder.actions):
        oracle_choosers.append(oracle_chooser(table))
    choosers = [policy_chooser(table, FixedPolicy(action)) for action in ladder.actions]
    choosers += oracle_choosers + [policy_chooser(table, agent) for agent in agents]
    with progress(len(table), not args.no_progress, "bench") as indices:
        results = evaluate(table, choosers, indices, strict=args.strict)
    n_fixed, n_bounds = len(ladder), len(ladder) + len(oracle_choosers)
    fixed, oracles, agent_results = results[:n_fixed], results[n_fixed:n_bounds], results[n_bounds:]
    fixed_jpeg = [r for r, a in zip(fixed, ladder.actions, strict=True) if a.codec == "jpeg"]
    cost = cost_report(table.backend, args.price_per_1k_usd)
    print_skips(results)
    print(format_table(results))
    print(cost_line(cost))
    rows = [dict(r.to_json(), kind="fixed", codec=a.codec, quality=a.quality, short_side=a.short_side)
            for r, a in zip(fixed, ladder.actions, strict=True)]
    rows += [dict(r.to_json(), kind="oracle") for r in oracles]
    rows += [dict(r.to_json(), kind="agent", dominates_fixed_jpeg=dominates(r, fixed_jpeg)) for r in agent_results]
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"backend": table.backend.name, "images": len(table), "subset": args.subset,
               "rule": scoring.rule.value, "reference": REFERENCE_ACTION.label,
               "backend_calls": table.backend.stats.calls, "cost": cost.to_json(), "rows": rows}
    (args.out / "bench.json").write_text(json.dumps(summary, indent=2) + "\n")
    check_usable(results, images, args.images)
    plot(rows, args.out / "bench.png", f"{table.backend.name}, {len(table)} images, rule {scoring.rule.value}")
    print(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.png'}")
    return 0


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    curves = sorted({(r["codec"], r.get("short_side", 0)) for r in rows if r["kind"] == "fixed"},
                    key=lambda curve: (curve[0] != "jpeg", curve[0], curve[1] > 0, -curve[1]))
    for codec, cap in curves:
        points = [r for r in rows if r["kind"] == "fixed" and r["codec"] == codec and r.get("short_side", 0) == cap]
        marker = {"jpeg": "o-", "webp": "s--", "avif": "^--"}[codec] if not cap else "v:"
        if points:
            ax.plot([r["bytes_vs_reference"] for r in points], [r["accuracy"] for r in points], marker,
                    label=f"fixed {codec.upper()} quality" + (f" @{cap} px" if cap else ""), alpha=0.8)
            for r in points:
                ax.annotate(str(r["quality"]), (r["bytes_vs_reference"], r["accuracy"]), fontsize=7,
                            textcoords="offset points", xytext=(3, -9))
    for r in rows:
        if r["kind"] in ("oracle", "agent"):
            ax.plot(r["bytes_vs_reference"], r["accuracy"], "*" if r["kind"] == "agent" else "D",
                    markersize=12 if r["kind"] == "agent" else 8, label=r["policy"])
    ax.set_xscale("log")
    ax.set_xlabel("bytes relative to JPEG q=75 (log scale)")
    ax.set_ylabel("accuracy (answer kept)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
