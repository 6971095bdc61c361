"""`adacompress demo`: the main job on an embedded default, no Redis or cloud account needed.

Every fixed JPEG quality, the per-image oracle and the shipped agent for the local backend, run
over the photos bundled with scikit-image and matplotlib (or `--images DIR`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from adacompress.agents.policies import FixedPolicy, policy_from_spec
from adacompress.agents.pretrained import shipped_agents
from adacompress.cloud_backends.registry import create_backend
from adacompress.codec import DEFAULT_LADDER
from adacompress.commands._common import check_usable, load_images, print_skips
from adacompress.demo_images import demo_image_set
from adacompress.evaluation import evaluate, format_table, oracle_chooser, policy_chooser
from adacompress.outcomes import OutcomeTable

DEMO_AGENT = "local-lite2"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=Path, help="image folder (default: photos bundled with scikit-image)")
    parser.add_argument("--backend", default="local", help="backend spec (default: local)")
    parser.add_argument("--agent", default=f"pretrained:{DEMO_AGENT}",
                        help="agent to compare (default: the shipped local agent; 'none' to skip)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")


def run(args: argparse.Namespace) -> int:
    images = load_images(args.images, "all") if args.images else demo_image_set()
    backend = create_backend(args.backend)
    print(f"adacompress demo: {len(images)} images, backend {backend.name}, reference JPEG q=75 "
          "(offline: no Redis or cloud account needed)")
    table = OutcomeTable(images, backend, DEFAULT_LADDER)
    choosers = [policy_chooser(table, FixedPolicy(action)) for action in DEFAULT_LADDER.actions]
    choosers.append(oracle_chooser(table))
    if args.agent != "none" and (args.agent != f"pretrained:{DEMO_AGENT}" or DEMO_AGENT in shipped_agents()):
        choosers.append(policy_chooser(table, policy_from_spec(args.agent, DEFAULT_LADDER)))
    results = evaluate(table, choosers)
    print_skips(results)
    print(format_table(results))
    check_usable(results, images, args.images)
    fixed = results[: len(DEFAULT_LADDER)]
    for result in results[len(DEFAULT_LADDER):]:
        rivals = [f for f in fixed if f.accuracy >= result.accuracy]
        best = min(rivals, key=lambda f: f.bytes_vs_reference)
        print(f"{result.policy}: {result.bytes_vs_reference:.2f} of the q=75 bytes at {result.accuracy:.1%} "
              f"accuracy; the cheapest fixed quality as accurate, {best.policy}, sends {best.bytes_vs_reference:.2f}.")
    print(f"{backend.stats.calls} backend calls.")
    if args.json:
        args.json.write_text(json.dumps([r.to_json() for r in results], indent=2))
    return 0
