"""`adacompress learn`: retrain the current policy on the service's transitions and publish what validates."""

from __future__ import annotations

import argparse
import threading

from adacompress.agents.learner import Learner, LearnerConfig
from adacompress.service.registry import Registry
from adacompress.service.store import open_store


def configure(parser: argparse.ArgumentParser) -> None:
    defaults = LearnerConfig()
    parser.add_argument("--redis", metavar="URL", help="the service's Redis (default ADACOMPRESS_REDIS_URL)")
    parser.add_argument("--prefix", help="key prefix (default ADACOMPRESS_REDIS_PREFIX, else adacompress:)")
    parser.add_argument("--once", action="store_true",
                        help="one step: read what is new, retrain if enough arrived, and exit")
    parser.add_argument("--min-transitions", type=int, default=defaults.min_new_transitions, metavar="N",
                        help=f"new transitions that start a retrain (default {defaults.min_new_transitions}; "
                             "the daemon's retrain request starts one sooner)")
    parser.add_argument("--gradient-steps", type=int, default=defaults.gradient_steps, metavar="N",
                        help=f"gradient steps per retrain (default {defaults.gradient_steps})")
    parser.add_argument("--poll-s", type=float, default=5.0, help="seconds between steps (default 5)")


def run(args: argparse.Namespace) -> int:
    store = open_store(args.redis, args.prefix)
    config = LearnerConfig(min_new_transitions=args.min_transitions,
                           min_transitions=max(2, min(args.min_transitions, LearnerConfig.min_transitions)),
                           gradient_steps=args.gradient_steps)
    learner = Learner(store, Registry(store), config=config)
    try:
        if args.once:
            result = learner.step()
            if result is not None:
                print(result.line(), flush=True)
        else:
            learner.run(threading.Event(), args.poll_s, on_retrain=lambda result: print(result.line(), flush=True))
        return 0
    finally:
        store.close()
