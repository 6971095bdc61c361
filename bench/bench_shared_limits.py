"""Shared provider limits: two worker processes, one Baidu account at 2 QPS, the Baidu fake counting arrivals.

Each worker builds its own `create_backend("baidu", qps=2, ...)` stack (no response cache) and uploads
distinct images as fast as its limiter lets it for the window. With a Redis URL the two draw from one
bucket in Redis and together must stay at 2 QPS; without one (the baseline) each has its own bucket and
together they send about 4 QPS, which is what the free tier would throttle. The fake's arrival times
are the measurement: calls in the window, their rate, and the most calls in any one-second span.

    python bench/bench_shared_limits.py --out bench/results/shared_limits.json
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import redis
from _common import REPO_ROOT, machine, write_json
from PIL import Image

from adacompress.cloud_backends.fakes import BaiduFake
from adacompress.cloud_backends.registry import create_backend

QPS = 2.0
WORKERS = 2


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.linspace(0, 255, 160)[None, :, None] * np.array([1.0, 0.6, 0.3]) + rng.normal(0, 12, (120, 160, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _worker(index: int, env: dict[str, str], redis_url: str | None, prefix: str, start_at: float,
            stop_at: float) -> None:
    """Upload distinct images through one backend stack until `stop_at` (wall clock)."""
    os.environ.update(env)
    backend = create_backend("baidu", qps=QPS, cache="off", redis_url=redis_url, cache_prefix=prefix,
                             deadline_s=30.0)
    seed = index * 100_000
    time.sleep(max(0.0, start_at - time.time()))
    while time.time() < stop_at:
        seed += 1
        backend.recognize(_jpeg(seed))
    backend.close()


def _run(fake: BaiduFake, redis_url: str | None, window_s: float) -> dict:
    prefix = f"adacompress-bench:{uuid.uuid4().hex}:"
    fake.arrivals.clear()
    start_at = time.time() + 3.0  # both workers have imported and built their stacks by then
    stop_at = start_at + window_s
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_worker, args=(i, fake.env(), redis_url, prefix, start_at, stop_at))
               for i in range(WORKERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    monotonic_start = time.monotonic() - (time.time() - start_at)
    arrivals = [t - monotonic_start for t in fake.arrivals if 0.0 <= t - monotonic_start < window_s]
    if redis_url:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
    busiest = max((sum(1 for u in arrivals if t <= u < t + 1.0) for t in arrivals), default=0)
    return {"limits": "redis" if redis_url else "per process", "calls_in_window": len(arrivals),
            "qps_together": round(len(arrivals) / window_s, 3), "most_calls_in_any_1s": busiest,
            "worker_exit_codes": [w.exitcode for w in workers]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default=os.environ.get("ADACOMPRESS_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "shared_limits.json")
    args = parser.parse_args(argv)
    load_at_start = os.getloadavg()
    with BaiduFake() as fake:
        shared = _run(fake, args.redis_url, args.window_s)
        baseline = _run(fake, None, args.window_s)
    report = {
        "what": f"{WORKERS} processes, one Baidu account limited to {QPS:g} QPS, against the Baidu fake",
        "window_s": args.window_s, "qps_limit": QPS, "workers": WORKERS,
        "shared_through_redis": shared, "baseline_without_redis": baseline,
        "target": f"shared qps_together <= {QPS:g} (at most burst 1 + {QPS:g} x window calls)",
        "met": shared["calls_in_window"] <= 1 + QPS * args.window_s,
        "load_average_at_start": [round(x, 2) for x in load_at_start],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "machine": machine(),
    }
    write_json(report, args.out)
    print(f"shared: {shared['qps_together']} QPS ({shared['calls_in_window']} calls in {args.window_s:g} s, "
          f"most in 1 s: {shared['most_calls_in_any_1s']}); per process: {baseline['qps_together']} QPS; "
          f"load {report['load_average_at_end']}")
    return 0 if report["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
