"""`adacompress train`: train a DQN agent on a backend within a budget of backend calls."""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import asdict, replace
from pathlib import Path

from adacompress.agents.agent_file import AgentConfig
from adacompress.agents.policies import LearnedPolicy
from adacompress.agents.pretrained import file_sha256
from adacompress.agents.training import train_agent
from adacompress.codec import REFERENCE_ACTION
from adacompress.commands._common import (
    add_data_args,
    backend_from_args,
    ladder_from_args,
    load_images,
    scoring_from_args,
)
from adacompress.envs.jpeg_quality import JpegQualityEnv
from adacompress.evaluation import evaluate_policy
from adacompress.features import DEFAULT_FEATURIZER, make_featurizer
from adacompress.images import AugmentedImageSet
from adacompress.outcomes import OutcomeTable


def configure(parser: argparse.ArgumentParser) -> None:
    add_data_args(parser)
    parser.add_argument("--steps", type=int, default=2000, help="env steps (images served) to train for")
    parser.add_argument("--max-calls", type=int, default=4000, help="stop when this many backend calls are spent")
    parser.add_argument("--out", type=Path, required=True, help="agent file to write (.zip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--featurizer", default=DEFAULT_FEATURIZER,
                        help=f"what the agent sees (default {DEFAULT_FEATURIZER}; probe:SURROGATE is the slow "
                             "full-size probe; embedding the 1280-d features)")
    parser.add_argument("--head", choices=("known-cost", "mlp"), default="known-cost",
                        help="Q-network head: learned hit probability minus the known size term, or a plain MLP")
    parser.add_argument("--net-arch", default="64,64", help="hidden layer widths, comma separated")
    parser.add_argument("--gradient-steps", type=int, default=AgentConfig.gradient_steps)
    parser.add_argument("--views", type=int, default=0,
                        help="also train on this many seeded random crops of each image (more examples per call)")
    parser.add_argument("--checkpoint-every", type=int, default=500, help="env steps between checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue from --out and its .state.json")
    parser.add_argument("--heldout", choices=("even", "odd"), help="after training, evaluate on this subset "
                        "and write a model card (<out>.json)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    ladder, scoring = ladder_from_args(args), scoring_from_args(args)
    backend = backend_from_args(args, [*ladder.actions, REFERENCE_ACTION])
    images = load_images(args.images, args.subset, args.reduced_decode_px)
    if args.views:
        images = AugmentedImageSet(images, args.views, args.seed)
    config = AgentConfig(net_arch=tuple(int(w) for w in args.net_arch.split(",")), featurizer=args.featurizer,
                         head=args.head, size_weight=scoring.beta / scoring.alpha,
                         gradient_steps=args.gradient_steps, seed=args.seed)
    # Rewards divided by alpha: same best actions, and errors stay in the Huber loss's quadratic zone.
    unit_scoring = replace(scoring, alpha=1.0, beta=scoring.beta / scoring.alpha)
    env = JpegQualityEnv(images, backend, ladder, scoring=unit_scoring,
                         featurizer=make_featurizer(args.featurizer, ladder), infer_monotone=True)
    env.reset(seed=args.seed)
    training = {"command": "adacompress " + shlex.join(args.argv), "backend": backend.name,
                "images": str(args.images), "subset": args.subset,
                "image_count": len(images), "views_per_image": args.views, "steps_requested": args.steps,
                "max_calls": args.max_calls,
                "seed": args.seed}
    agent, report = train_agent(env, config, args.steps, args.out, args.max_calls, args.checkpoint_every,
                                args.resume, progress_bar=not args.no_progress, metadata={"training": training})
    print(f"trained {report.steps} steps on {report.images_resolved} images; {report.backend_calls} backend calls"
          f"{' (stopped by the call budget)' if report.stopped_by_budget else ''}; agent written to {args.out}")
    if args.heldout:
        heldout = load_images(args.images, args.heldout, args.reduced_decode_px)
        table = OutcomeTable(heldout, backend, ladder, env.table.reference_action, scoring)
        result = evaluate_policy(table, LearnedPolicy(agent, f"agent:{args.out.stem}"))
        card = {
            "name": args.out.stem, "backend": backend.name, "ladder": ladder.spec,
            "reference": env.table.reference_action.label, "scoring": {**asdict(scoring), "rule": scoring.rule.value},
            "featurizer": config.featurizer, "config": asdict(config),
            "training": {**training, "steps": report.steps, "backend_calls": report.backend_calls,
                         "images_resolved": report.images_resolved},
            "heldout": {"subset": args.heldout, **result.to_json()},
            "agent_sha256": file_sha256(args.out), "version": agent.version,
        }
        args.out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
        print(f"held-out ({args.heldout}): {result.bytes_vs_reference:.3f} of the reference bytes at "
              f"{result.accuracy:.1%} accuracy; model card written to {args.out.with_suffix('.json')}")
    return 0
