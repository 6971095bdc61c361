"""`adacompress eval`: run policies over an image folder on a backend and report bytes, accuracy and cost.

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

from adacompress.cloud_backends.cost import cost_report
from adacompress.codec import REFERENCE_ACTION
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
from adacompress.evaluation import evaluate, format_table, spec_chooser
from adacompress.outcomes import OutcomeTable


def configure(parser: argparse.ArgumentParser) -> None:
    add_data_args(parser)
    parser.add_argument("--policy", action="append", required=True,
                        help="fixed:Q, random, oracle, pretrained:NAME or an agent .zip (repeatable)")
    parser.add_argument("--json", type=Path, help="write the results and the backend's cost here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random policy")
    add_report_args(parser)


def run(args: argparse.Namespace) -> int:
    images = load_images(args.images, args.subset, args.reduced_decode_px)
    table = OutcomeTable(images, backend_from_args(args), ladder_from_args(args), REFERENCE_ACTION,
                         scoring_from_args(args))
    choosers = [spec_chooser(table, spec, args.seed) for spec in args.policy]
    with progress(len(table), not args.no_progress, "eval") as indices:
        results = evaluate(table, choosers, indices, strict=args.strict)
    cost = cost_report(table.backend, args.price_per_1k_usd)
    print_skips(results)
    print(format_table(results))
    print(cost_line(cost))
    if args.json:
        payload = results[0].to_json() if len(results) == 1 else {"results": [r.to_json() for r in results]}
        payload["cost"] = cost.to_json()
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    check_usable(results, images, args.images)
    return 0
