"""`adacompress replay`: stream a drift scenario through the daemon and write what happened."""

from __future__ import annotations

import argparse
from pathlib import Path

from adacompress.commands._common import load_images
from adacompress.service.rules import RULE_SETS

NOTES = """Built-in scenarios: day-to-night, fog-rolls-in, provider-swap (file format: docs/scenarios.md).
Writes timeline.jsonl (one line per image and rule set), summary.json and timeline.png under --out.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = NOTES
    parser.add_argument("scenario", help="a built-in scenario's name or a scenario .toml file")
    parser.add_argument("--images", type=Path, required=True, help="photos the scenario streams (recursive)")
    parser.add_argument("--subset", choices=("all", "even", "odd"), default="all",
                        help="files by position in name order (the shipped agents were trained on even)")
    parser.add_argument("--backend", default="local", help="backend before any phase changes it (default local)")
    parser.add_argument("--policy", default="pretrained:local-lite2")
    parser.add_argument("--rules", choices=(*RULE_SETS, "both"), default="both",
                        help="rule sets to run side by side (default both)")
    parser.add_argument("--target-accuracy", type=float, metavar="SHARE", help="for --rules adacompress")
    parser.add_argument("--no-learn", action="store_true", help="never retrain during the stream")
    parser.add_argument("--learn-every", type=int, default=100, metavar="N", help="images between learner steps")
    parser.add_argument("--proxy", metavar="URL", help="replay through a running proxy (its daemon and rules)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="folder for timeline.jsonl, summary.json, timeline.png")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from adacompress.envs.scenarios import load_scenario
    from adacompress.service.replay import ReplayOptions, replay, write_outputs

    scenario = load_scenario(args.scenario)
    images = load_images(args.images, args.subset)
    rules = RULE_SETS if args.rules == "both" else (args.rules,)
    options = ReplayOptions(backend=args.backend, policy=args.policy, rules=tuple(rules),
                            target_accuracy=args.target_accuracy, learn=not args.no_learn,
                            learn_every=args.learn_every, seed=args.seed, proxy=args.proxy)
    runs = 1 if args.proxy else len(rules)
    total = scenario.total_images * runs
    with tqdm(total=total, disable=args.no_progress, unit="image", desc=f"replay {scenario.name}") as bar:
        timelines = replay(scenario, images, options, lambda name, position: bar.update(1))
    summary = write_outputs(scenario, timelines, args.out)
    for name, result in summary["rules"].items():
        for phase in result["phases"]:
            recover = phase["images_to_recover"]
            print(f"{name:>12} {phase['phase']:<12} accuracy {phase['accuracy']:.3f}  bytes "
                  f"{phase['bytes_vs_reference']:.3f}  estimates +{phase['estimate_calls_overhead']:.0%} calls  "
                  f"retrains {phase['retrains']}" + (f"  recovered after {recover}" if recover is not None else ""))
    print(f"wrote {args.out}/timeline.jsonl, summary.json, timeline.png")
    return 0
