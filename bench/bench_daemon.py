"""Daemon overhead: what `Daemon.handle` adds to a request beyond the policy's `decide()` and the backend.

Per request, the time inside `decide()` and inside `recognize()` is measured by the policy and the backend
themselves and subtracted from `handle()`'s, so the overhead (the rules, the input-drift update, the lock,
the state shared with Redis once a second) is measured per request rather than as a difference of two
noisy medians. The upload is decoded before `handle()` (decoding is the first step of `decide(bytes)`, timed
and reported on its own). Inference requests only (the estimate rate is pinned at 0); the target is < 1 ms p50.
The daemon shares its state with the Redis at `--redis` (default 127.0.0.1:6379) under its own prefix.

    python bench/bench_daemon.py --out bench/results/daemon.json
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

from _common import REPO_ROOT, machine, percentiles, sample_files, write_json

from adacompress.agents.policies import Decision, LearnedPolicy
from adacompress.agents.pretrained import load_pretrained
from adacompress.agents.replay_buffer import TransitionBuffer
from adacompress.cloud_backends.base import Recognition
from adacompress.cloud_backends.local import LocalBackend
from adacompress.service.daemon import Daemon
from adacompress.service.rules import TargetRules
from adacompress.service.store import RedisStore
from adacompress.upload import Upload

TARGET_OVERHEAD_P50_MS = 1.0


class TimedPolicy(LearnedPolicy):
    """The shipped agent, keeping the time each `decide()` took."""

    last_ms = 0.0

    def decide(self, upload, size_weight=None, min_rung=0) -> Decision:  # type: ignore[override]
        started = time.perf_counter_ns()
        try:
            return super().decide(upload, size_weight, min_rung)
        finally:
            self.last_ms = (time.perf_counter_ns() - started) / 1e6


class TimedBackend(LocalBackend):
    """The local backend, keeping the time each `recognize()` took."""

    last_ms = 0.0

    def recognize(self, image_bytes: bytes, *, use_cache: bool = True) -> Recognition:
        started = time.perf_counter_ns()
        try:
            return super().recognize(image_bytes, use_cache=use_cache)
        finally:
            self.last_ms = (time.perf_counter_ns() - started) / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200, help="sample photos served (0.2 MP, as they are)")
    parser.add_argument("--agent", default="local-lite2")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "daemon.json")
    args = parser.parse_args(argv)

    uploads = [path.read_bytes() for path in sample_files(None, args.images)]
    policy, backend = TimedPolicy(load_pretrained(args.agent), args.agent), TimedBackend("lite2")
    store = RedisStore(args.redis, prefix=f"bench-daemon-{uuid.uuid4().hex[:8]}:")
    rules = TargetRules(p_est_floor=0.0, alert_requests=0)
    daemon = Daemon(policy, backend, policy.scoring, TransitionBuffer(store), rules)
    overhead, handle, decide, recognize, decode = [], [], [], [], []
    try:
        for warmup in uploads[:10]:
            daemon.handle(Upload.of(warmup))
        for data in uploads:
            started = time.perf_counter_ns()
            upload = Upload.of(data)
            decoded = time.perf_counter_ns()
            decode.append((decoded - started) / 1e6)
            started = time.perf_counter_ns()
            daemon.handle(upload)
            total = (time.perf_counter_ns() - started) / 1e6
            handle.append(total)
            decide.append(policy.last_ms)
            recognize.append(backend.last_ms)
            overhead.append(total - policy.last_ms - backend.last_ms)
        shared = store.hgetall(store.keys.daemon_state)
    finally:
        store.delete(store.keys.daemon_state, store.keys.transitions)
        daemon.close()
    result = percentiles(overhead)
    report = {
        "benchmark": "daemon_overhead",
        "agent": args.agent, "rules": "adacompress (estimate rate pinned at 0; input-drift detection on)",
        "images": f"{len(uploads)} sample photos as they are (about 0.2 MP)",
        "overhead": result, "handle": percentiles(handle), "decode": percentiles(decode),
        "decide": percentiles(decide),
        "recognize": percentiles(recognize),
        "state_shared_fields": sorted(shared),
        "target": {"overhead_p50_ms": TARGET_OVERHEAD_P50_MS, "met": result["p50_ms"] < TARGET_OVERHEAD_P50_MS},
        "machine": machine(),
    }
    write_json(report, args.out)
    print(f"daemon overhead p50 {result['p50_ms']:.3f} ms, p90 {result['p90_ms']:.3f} ms "
          f"(decide p50 {report['decide']['p50_ms']:.1f} ms, recognize p50 {report['recognize']['p50_ms']:.1f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
