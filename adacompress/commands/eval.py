"""`adacompress eval`: run policies over an image folder on a backend and report bytes and accuracy.

With one `--policy`, the `--json` file is that policy's result object (`images`,
`bytes_vs_reference`, `accuracy`, `mean_bytes`, `backend_calls`, `quality_histogram`, ...);
with several, it is `{"results": [...]}`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from adacompress.codec import REFERENCE_ACTION
from adacompress.commands._common import (
    add_data_args,
    backend_from_args,
    ladder_from_args,
    load_images,
    scoring_from_args,
)
from adacompress.evaluation import evaluate_spec, format_table
from adacompress.outcomes import OutcomeTable


def configure(parser: argparse.ArgumentParser) -> None:
    add_data_args(parser)
    parser.add_argument("--policy", action="append", required=True,
                        help="fixed:Q, random, oracle, pretrained:NAME or an agent .zip (repeatable)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random policy")


def run(args: argparse.Namespace) -> int:
    table = OutcomeTable(load_images(args.images, args.subset), backend_from_args(args), ladder_from_args(args),
                         REFERENCE_ACTION, scoring_from_args(args))
    results = [evaluate_spec(table, spec, args.seed) for spec in args.policy]
    print(format_table(results))
    if args.json:
        payload = results[0].to_json() if len(results) == 1 else {"results": [r.to_json() for r in results]}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0
