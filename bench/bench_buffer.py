"""Transition buffer benchmark: transitions/s added by 2 producer processes, and the learner's read and sampling rates.

Runs against a real Redis (default the local one at 127.0.0.1:6379) under a fresh key prefix, and
deletes its keys afterwards. Producers add 31-d probe transitions one `add` at a time (the daemon's
worst case: one round trip each), then in `add_many` batches of 11 (one estimate labelling every rung
of the default ladder). The learner reads everything back and samples batches of 64, with and
without converting them to SB3 arrays. Targets from the issue: >= 5,000 transitions/s added from 2
producers, >= 100 batches of 64 sampled per second.

    python bench/bench_buffer.py --out bench/results/buffer.json
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
import uuid
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

import numpy as np
import redis
from _common import REPO_ROOT, machine, write_json

from adacompress.agents.replay_buffer import Transition, TransitionBuffer, replay_arrays
from adacompress.service.store import RedisStore

TARGETS = {"added_per_s_2_producers": 5_000, "batches_of_64_per_s": 100}
PRODUCERS = 2
BATCH = 11


def transitions(producer: int, count: int) -> list[Transition]:
    rng = np.random.default_rng(producer)
    version = "f" * 64
    return [Transition(rng.random(31, dtype=np.float32), seq % 11, bool(seq % 5), float(rng.random()), version,
                       time.time(), 20_000, 4_000) for seq in range(count)]


def produce(url: str, prefix: str, producer: int, count: int, batch: int, start: Event, out: Queue) -> None:
    """One producer process: say it is ready, wait for the start, add `count` transitions, report times and counts."""
    buffer = TransitionBuffer(RedisStore(url, prefix))
    ready = transitions(producer, count)
    out.put("ready")
    start.wait()
    began = time.monotonic()
    if batch == 1:
        for transition in ready:
            buffer.add(transition)
    else:
        for i in range(0, count, batch):
            buffer.add_many(ready[i:i + batch])
    out.put((began, time.monotonic(), buffer.added, buffer.dropped, buffer.pending))


def bench_producers(url: str, prefix: str, count: int, batch: int) -> dict:
    context = mp.get_context("spawn")
    start, out = context.Event(), context.Queue()
    workers = [context.Process(target=produce, args=(url, prefix, p, count, batch, start, out))
               for p in range(PRODUCERS)]
    for worker in workers:
        worker.start()
    assert [out.get(timeout=120) for _ in workers] == ["ready"] * PRODUCERS  # imports and set-up are not timed
    start.set()
    reports = [out.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    wall = max(r[1] for r in reports) - min(r[0] for r in reports)
    added = sum(r[2] for r in reports)
    return {"producers": PRODUCERS, "per_producer": count, "batch": batch, "added": added,
            "dropped": sum(r[3] for r in reports), "pending": sum(r[4] for r in reports),
            "wall_s": round(wall, 3), "added_per_s": round(added / wall)}


def bench_learner(url: str, prefix: str, expected: int, seconds: float) -> dict:
    learner = TransitionBuffer(RedisStore(url, prefix), capacity=expected)
    began = time.monotonic()
    while learner.read(count=5_000):
        pass
    read_s = time.monotonic() - began
    rng = np.random.default_rng(0)
    result = {"read": len(learner), "read_per_s": round(len(learner) / read_s)}
    for name, work in (("sample", lambda: learner.sample(64, rng)),
                       ("sample_and_replay_arrays", lambda: replay_arrays(learner.sample(64, rng), 1.0, 1.0))):
        batches, began = 0, time.monotonic()
        while time.monotonic() - began < seconds:
            work()
            batches += 1
        result[f"{name}_batches_of_64_per_s"] = round(batches / (time.monotonic() - began))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--per-producer", type=int, default=20_000)
    parser.add_argument("--sample-seconds", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "buffer.json")
    args = parser.parse_args(argv)
    report = {"machine": machine(), "loadavg_at_start": os.getloadavg(), "redis_url": args.url,
              "targets": TARGETS}
    client = redis.Redis.from_url(args.url)
    report["redis_version"] = client.info("server")["redis_version"]
    prefixes = []
    try:
        for batch in (1, BATCH):
            prefix = f"adacompress-bench:{uuid.uuid4().hex[:12]}:"
            prefixes.append(prefix)
            key = "single_adds" if batch == 1 else f"add_many_{batch}"
            report[key] = bench_producers(args.url, prefix, args.per_producer, batch)
            print(key, report[key], file=sys.stderr)
        report["learner"] = bench_learner(args.url, prefixes[0], PRODUCERS * args.per_producer, args.sample_seconds)
        print("learner", report["learner"], file=sys.stderr)
    finally:
        for prefix in prefixes:
            keys = list(client.scan_iter(match=f"{prefix}*"))
            if keys:
                client.delete(*keys)
    report["loadavg_at_end"] = os.getloadavg()
    measured = {"added_per_s_2_producers": report["single_adds"]["added_per_s"],
                "batches_of_64_per_s": report["learner"]["sample_and_replay_arrays_batches_of_64_per_s"]}
    report["met"] = {name: measured[name] >= target for name, target in TARGETS.items()}
    write_json(report, args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
