"""A drift scenario under many daemon seeds: what one `adacompress replay` run cannot tell from luck.

`adacompress replay` runs a scenario once; which requests become estimates is a random draw: over 500 night
images, one run each estimated 12% and 28% of requests under two dials whose means over 40 seeds differ by 4 points.
Here the scenario's stream (the same images, transforms and client uploads as `replay`) goes through the real
daemon once per seed, with each upload probed once and each answer asked once (`_many_orders.py`), under the
shipped rules and under the dial they replaced. Per phase: answers kept (every answer scored against
the frame's own reference under the phase's backend), the share of requests estimated, and bytes; and the
ceiling: what each quality floor keeps at the dial's lowest setting.

    python bench/bench_drift_seeds.py --out bench/results/drift_seeds.json
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
from _common import IMAGENET_SAMPLE, REPO_ROOT, machine, write_json
from _many_orders import ManyOrders, RecordedAnswers, remembering_policy
from bench_hold_target import old_dial_rules

from adacompress.cloud_backends.registry import create_backend
from adacompress.codec import REFERENCE_ACTION, encode
from adacompress.commands._common import load_images
from adacompress.envs.scenarios import load_scenario, scenario_stream
from adacompress.service.replay import upload_bytes
from adacompress.service.rules import TargetRules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="day-to-night", help="a built-in scenario without backend changes")
    parser.add_argument("--images", type=Path, default=IMAGENET_SAMPLE)
    parser.add_argument("--policy", default="pretrained:local-lite2")
    parser.add_argument("--backend", default="local")
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "drift_seeds.json")
    args = parser.parse_args(argv)

    started, host = time.perf_counter(), machine()
    logging.disable(logging.WARNING)  # every seed asks for retraining at night; the summary says what matters
    scenario = load_scenario(args.scenario)
    if any(phase.backend for phase in scenario.phases):
        parser.error(f"scenario {scenario.name!r} changes the backend mid-stream; this bench keeps one backend")
    policy = remembering_policy(args.policy)
    backend = RecordedAnswers(create_backend(args.backend))
    uploads, truths, phases = [], [], []
    for item in scenario_stream(scenario, load_images(args.images, "odd")):
        frame = item.load()
        uploads.append(policy.upload_of(upload_bytes(frame)))  # what replay's client sends, decoded as served
        truths.append(encode(frame, REFERENCE_ACTION).data)
        phases.append(item.phase.name)
    stream = ManyOrders(uploads, truths, policy, backend)
    order = list(range(len(uploads)))
    results = {}
    for name, rules in (("shipped", TargetRules()), ("old_dial", old_dial_rules(TargetRules().target_accuracy))):
        runs = [stream.serve(rules, order, seed) for seed in range(args.seeds)]
        results[name] = {phase.name: phase_summary(runs, np.array(phases) == phase.name) for phase in scenario.phases}
        for phase, summary in results[name].items():
            print(f"{name:>12} {phase:>8}: kept {summary['kept_mean']:.4f} (sd {summary['kept_sd']:.4f}), estimated "
                  f"{summary['estimated_share_mean']:.3f} (sd {summary['estimated_share_sd']:.3f}), bytes "
                  f"{summary['bytes_vs_reference_mean']:.4f}", flush=True)
    floors = {phase.name: floor_ceiling(stream, np.array(phases) == phase.name) for phase in scenario.phases}
    write_json({"benchmark": "drift_seeds", "scenario": scenario.name, "policy": args.policy, "backend": args.backend,
                "images": f"{args.images.name}, odd half", "seeds": args.seeds, "stream_length": len(uploads),
                "rules": {"shipped": "TargetRules() defaults",
                          "old_dial": "dial gain 0.5, weights capped at 3 (before 2026-11-30)"},
                "results": results,
                "floors_at_the_lowest_dial": floors,
                "floors_note": "per phase, answers kept and bytes if every request were decided at the dial's lowest "
                               "setting under each quality floor (no estimates): the most the dial and the floor "
                               "can reach without retraining",
                "seconds": round(time.perf_counter() - started, 1), "machine": host},
               args.out)
    return 0


def floor_ceiling(stream: ManyOrders, mask: np.ndarray) -> dict[str, dict[str, float]]:
    """Per quality floor, what the phase's requests keep and send when decided at the lowest dial setting."""
    policy = stream.policy
    lowest = policy.size_weight * TargetRules().dial_range[0]
    indices = np.flatnonzero(mask)
    ceiling = {}
    for floor in range(len(policy.ladder)):
        kept, sent, reference = 0, 0, 0
        for i in indices:
            decision = policy.decide(stream.uploads[i], lowest, floor)
            kept += policy.scoring.hit(stream.backend.recognize(stream.truths[i]),
                                       stream.backend.recognize(decision.data))
            sent, reference = sent + decision.bytes, reference + decision.reference_bytes
        ceiling[policy.ladder[floor].label] = {"kept": kept / len(indices), "bytes_vs_reference": sent / reference}
    return ceiling


def phase_summary(runs: list[dict[str, np.ndarray]], mask: np.ndarray) -> dict[str, float]:
    """Mean and spread over seeds of one phase's answers kept, estimated share and bytes sent / reference."""
    kept = np.array([run["kept"][mask].mean() for run in runs])
    estimated = np.array([run["estimated"][mask].mean() for run in runs])
    sent = np.array([run["bytes"][mask].sum() / run["reference_bytes"][mask].sum() for run in runs])
    return {"kept_mean": float(kept.mean()), "kept_sd": float(kept.std()),
            "estimated_share_mean": float(estimated.mean()), "estimated_share_sd": float(estimated.std()),
            "bytes_vs_reference_mean": float(sent.mean())}


if __name__ == "__main__":
    sys.exit(main())
