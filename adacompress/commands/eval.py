"""`adacompress eval`: run policies over an image folder on a backend and report bytes, accuracy and cost.

Without `--policy`, the comparison: every fixed quality of the ladder, the per-image oracle and the
shipped agent, each learned policy or bound set beside the cheapest fixed quality that is as accurate.
Without `--images`, the photos bundled with scikit-image and matplotlib (no download, no account).

With one `--policy`, the `--json` file is that policy's result object (`images`, `skipped`,
`bytes_vs_reference`, `accuracy`, `mean_bytes`, `backend_calls`, `quality_histogram`, ...) plus
`cost`; with several, it is `{"results": [...], "cost": {...}}`. `cost` is the backend's
`CostReport`: calls, cache hits, bytes sent and the estimated spend of the whole run.

A bad image is skipped and named (`skip NAME: [code] message`); the run fails only when no image
is usable, or at the first bad one with `--strict`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from adacompress.agents.policies import FixedPolicy
from adacompress.agents.pretrained import shipped_agents
from adacompress.cloud_backends.cost import cost_report
from adacompress.codec import REFERENCE_ACTION, Ladder
from adacompress.commands._common import (
    add_data_args,
    add_report_args,
    backend_from_args,
    check_usable,
    cost_line,
    ladder_from_args,
    load_images,
    print_skips,
    progress,
    scoring_from_args,
)
from adacompress.demo_images import demo_image_set
from adacompress.evaluation import EvalResult, evaluate, format_table, spec_chooser
from adacompress.outcomes import OutcomeTable

DEFAULT_AGENT = "local-lite2"


def configure(parser: argparse.ArgumentParser) -> None:
    add_data_args(parser, images_required=False)
    parser.add_argument("--policy", action="append",
                        help="fixed:Q, random, oracle, pretrained:NAME or an agent .zip (repeatable; default: every "
                             f"fixed quality, the oracle and pretrained:{DEFAULT_AGENT})")
    parser.add_argument("--json", type=Path, help="write the results and the backend's cost here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random policy")
    add_report_args(parser)


def default_policies(ladder: Ladder) -> list[str]:
    """The comparison: every fixed quality, the oracle, and the shipped agent when it is installed."""
    fixed = [FixedPolicy.spec_for(a) for a in ladder.actions]
    return fixed + ["oracle"] + ([f"pretrained:{DEFAULT_AGENT}"] if DEFAULT_AGENT in shipped_agents() else [])


def run(args: argparse.Namespace) -> int:
    ladder = ladder_from_args(args)
    backend = backend_from_args(args, [*ladder.actions, REFERENCE_ACTION])
    images = load_images(args.images, args.subset, args.reduced_decode_px) if args.images else demo_image_set()
    table = OutcomeTable(images, backend, ladder, REFERENCE_ACTION, scoring_from_args(args))
    if not args.policy:
        print(f"{len(images)} images, backend {table.backend.name}, reference JPEG q=75: every fixed quality, the "
              "oracle and the shipped agent")
    choosers = [spec_chooser(table, spec, args.seed) for spec in args.policy or default_policies(ladder)]
    with progress(len(table), not args.no_progress, "eval") as indices:
        results = evaluate(table, choosers, indices, strict=args.strict)
    cost = cost_report(table.backend, args.price_per_1k_usd)
    print_skips(results)
    print(format_table(results))
    if not args.policy:
        print_rivals(results)
    print(cost_line(cost))
    if args.json:
        payload = results[0].to_json() if len(results) == 1 else {"results": [r.to_json() for r in results]}
        payload["cost"] = cost.to_json()
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    check_usable(results, images, args.images)
    return 0


def print_rivals(results: list[EvalResult]) -> None:
    """Each policy that is not a fixed quality, beside the cheapest fixed quality at least as accurate."""
    fixed = [r for r in results if r.policy.startswith("fixed:") and r.images]
    for result in results:
        rivals = [f for f in fixed if f.accuracy >= result.accuracy]
        if result.policy.startswith("fixed:") or not rivals or not result.images:
            continue
        best = min(rivals, key=lambda f: f.bytes_vs_reference)
        print(f"{result.policy}: {result.bytes_vs_reference:.2f} of the q=75 bytes at {result.accuracy:.1%} "
              f"accuracy; the cheapest fixed quality as accurate, {best.policy}, sends {best.bytes_vs_reference:.2f}.")
