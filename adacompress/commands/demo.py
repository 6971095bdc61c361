"""`adacompress demo`: the main job on an embedded default, no Redis or cloud account needed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from adacompress.cloud_backends.registry import create_backend
from adacompress.codec import DEFAULT_LADDER
from adacompress.demo_images import demo_image_set
from adacompress.evaluation import evaluate, format_table
from adacompress.images import ImageSet
from adacompress.outcomes import OutcomeTable


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=Path, help="image folder (default: photos bundled with scikit-image)")
    parser.add_argument("--backend", default="local", help="backend spec (default: local)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")


def run(args: argparse.Namespace) -> int:
    images = ImageSet.from_folder(args.images) if args.images else demo_image_set()
    backend = create_backend(args.backend)
    print(f"adacompress demo: {len(images)} images, backend {backend.name}, reference JPEG q=75 "
          "(offline: no Redis or cloud account needed)")
    table = OutcomeTable(images, backend, DEFAULT_LADDER)
    results = [evaluate(table, lambda _i, a=a: a, f"fixed:{action.quality}")
               for a, action in enumerate(DEFAULT_LADDER.actions)]
    print(format_table(results))
    best = min((r for r in results if r.accuracy >= max(x.accuracy for x in results) - 0.02),
               key=lambda r: r.bytes_vs_reference)
    print(f"\nCheapest fixed quality within 2 points of the best accuracy: {best.policy} "
          f"({best.bytes_vs_reference:.2f} of the q=75 bytes at {best.accuracy:.1%} accuracy); "
          f"{backend.stats.calls} backend calls.")
    if args.json:
        args.json.write_text(json.dumps([r.to_json() for r in results], indent=2))
    return 0
