"""Proxy load: throughput, latency and memory of `adacompress serve`, beside a pass-through proxy in the same run.

Every server is a real process: a fake Rekognition (`adacompress fake-cloud`, labels from Lite0) and the proxy
(`adacompress serve --backend rekognition --no-cache`, decision workers as configured) in front of it,
driven over loopback by concurrent HTTP clients posting the sample photos as they are (`/v1/recognize`).
The pass-through proxy is the same server with `--passthrough` (no decision, the bytes forwarded as sent).
A shorter run with one decision worker shows what the default of one worker per core buys.

1. Throughput and p50/p99 latency of each; the proxy's resident memory (server and workers) after warm-up,
   after each tenth of the requests and at the end (target: flat over 10,000: a leak grows with every tenth,
   an allocator warming up does not). Target: throughput >= 60% of pass-through's.
   CPU milliseconds per request by part (clients, fake cloud, proxy server, decision workers) say where the
   cores went: the pass-through waits on its clients, the proxy on its cores.
2. What a user feels behind a slow uplink: the fake reads uploads no faster than `--uplink-mbit-s` (20), and
   one client sends each photo directly to it (our Rekognition client) or through the proxy on loopback;
   end-to-end p50 for the sample photos and for 2 MP photos.

    python bench/proxy_load.py --out bench/results/proxy_load.json
    python bench/proxy_load.py --requests 3000 --out bench/results/proxy_load-avx2.json   # another host, shorter
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
from _common import REPO_ROOT, decoded, machine, mosaic, percentiles, sample_files, write_json

from adacompress.cloud_backends.fakes.rekognition import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY
from adacompress.cloud_backends.registry import create_backend
from adacompress.service.proxy_runner import free_port

TARGET_THROUGHPUT_SHARE = 0.6
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def start(argv: list[str], env: dict[str, str], ready_url: str, log: Path) -> subprocess.Popen:
    """A server process, once `ready_url` answers."""
    process = subprocess.Popen([sys.executable, "-m", "adacompress.cli", *argv], env=env,
                               stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{argv} exited with {process.returncode}; see {log}")
        try:
            httpx.get(ready_url, timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{argv} did not start; see {log}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()


def process_tree(pid: int) -> list[int]:
    """A process and all its descendants."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    total = 0
    for current in process_tree(pid):
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return total / 1024


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds a process has used (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class CpuMeter:
    """CPU seconds per part while a run lasts: the load's clients (this process), the fake cloud, the proxy's
    server process and its decision workers. Their sum per request is what the two cores have to share."""

    def __init__(self, fake_pid: int, server_pid: int) -> None:
        self.parts = {"clients": [os.getpid()], "fake_cloud": [fake_pid], "proxy_server": [server_pid],
                      "decision_workers": process_tree(server_pid)[1:]}
        self.started = self._read()

    def _read(self) -> dict[str, float]:
        return {part: sum(cpu_s(pid) for pid in pids) for part, pids in self.parts.items()}

    def per_request_ms(self, requests: int) -> dict[str, float]:
        used = {part: 1000 * (end - self.started[part]) / requests for part, end in self._read().items()}
        return {**{part: round(ms, 1) for part, ms in used.items()}, "total": round(sum(used.values()), 1)}


def drive(url: str, uploads: list[bytes], requests: int, concurrency: int,
          every: tuple[int, Callable[[], float]] | None = None) -> dict:
    """`requests` POSTs to `url` from `concurrency` clients, round robin over `uploads`; with `every` = (n, probe),
    `probe()` is also read after each n-th answer (the `timeline`)."""
    latencies: list[float] = []
    timeline: list[list[float]] = []
    errors: dict[int, int] = {}
    counter = iter(range(requests))
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(timeout=120) as http:
            while True:
                with lock:
                    k = next(counter, None)
                if k is None:
                    return
                started = time.perf_counter()
                reply = http.post(url, content=uploads[k % len(uploads)])
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    if reply.status_code != 200:
                        errors[reply.status_code] = errors.get(reply.status_code, 0) + 1
                    if every and len(latencies) % every[0] == 0:
                        timeline.append([len(latencies), round(every[1](), 1)])

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ordered = np.asarray(latencies)
    return {"requests": requests, "concurrency": concurrency, "wall_s": round(wall, 2),
            "throughput_per_s": round(requests / wall, 2), "p50_ms": round(float(np.percentile(ordered, 50)), 1),
            "p99_ms": round(float(np.percentile(ordered, 99)), 1), "errors": errors,
            **({"timeline": timeline} if every else {})}


def load(mode: str, env: dict[str, str], uploads: list[bytes], args: argparse.Namespace, logs: Path,
         fake_pid: int) -> dict:
    """One server's run: `passthrough`, `adacompress` (`--requests`, at `--workers`) or `one_worker` (a fifth)."""
    port = free_port()
    workers = 1 if mode == "one_worker" else args.workers
    argv = ["serve", "--backend", "rekognition", "--no-cache", "--port", str(port), "--workers", str(workers),
            "--max-in-flight", str(4 * args.concurrency)] + (["--passthrough"] if mode == "passthrough" else [])
    server = start(argv, env, f"http://127.0.0.1:{port}/healthz", logs / f"serve-{mode}.log")
    url = f"http://127.0.0.1:{port}/v1/recognize"
    try:
        drive(url, uploads, args.warmup, args.concurrency)
        rss_start = rss_mb(server.pid)
        requests = args.requests if mode == "adacompress" else max(args.warmup, args.requests // 5)
        meter = CpuMeter(fake_pid, server.pid)
        result = {"workers": workers, **drive(url, uploads, requests, args.concurrency,
                                              (max(1, requests // 10), lambda: rss_mb(server.pid)))}
        result["rss_mb_timeline"] = result.pop("timeline")
        result["cpu_ms_per_request"] = meter.per_request_ms(requests)
        result["rss_mb_after_warmup"], result["rss_mb_at_end"] = round(rss_start, 1), round(rss_mb(server.pid), 1)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        sent = next(float(line.split()[1]) for line in metrics.splitlines()
                    if line.startswith("adacompress_bytes_sent_total"))
        received = next(float(line.split()[1]) for line in metrics.splitlines()
                        if line.startswith("adacompress_bytes_in_total"))
        result["bytes_sent_vs_received"] = round(sent / received, 3)
        return result
    finally:
        stop(server)


def uplink(env: dict[str, str], sets: dict[str, list[bytes]], args: argparse.Namespace, logs: Path) -> dict:
    """End-to-end p50 per request behind the simulated uplink: direct to the fake, and through the proxy."""
    fake_port, proxy_port = free_port(), free_port()
    fake = start(["fake-cloud", "--provider", "rekognition", "--port", str(fake_port), "--uplink-mbit-s",
                  str(args.uplink_mbit_s)], env, f"http://127.0.0.1:{fake_port}/", logs / "fake-uplink.log")
    slow_env = {**env, "AWS_ENDPOINT_URL_REKOGNITION": f"http://127.0.0.1:{fake_port}"}
    proxy = start(["serve", "--backend", "rekognition", "--no-cache", "--port", str(proxy_port), "--workers",
                   str(args.workers)], slow_env, f"http://127.0.0.1:{proxy_port}/healthz", logs / "serve-uplink.log")
    os.environ.update(slow_env)
    direct_backend = create_backend("rekognition", cache="off", qps=None)
    results = {}
    try:
        with httpx.Client(timeout=120) as http:
            for name, uploads in sets.items():
                direct, proxied = [], []
                for data in uploads:
                    started = time.perf_counter()
                    direct_backend.recognize(data)
                    direct.append((time.perf_counter() - started) * 1000)
                    started = time.perf_counter()
                    http.post(f"http://127.0.0.1:{proxy_port}/v1/recognize", content=data).raise_for_status()
                    proxied.append((time.perf_counter() - started) * 1000)
                results[name] = {"mean_upload_bytes": round(float(np.mean([len(u) for u in uploads]))),
                                 "direct": percentiles(direct), "through_proxy": percentiles(proxied),
                                 "proxy_p50_vs_direct": round(float(np.median(proxied) / np.median(direct)), 3)}
    finally:
        direct_backend.close()
        stop(proxy)
        stop(fake)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000, help="requests to the proxy (pass-through: a fifth)")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="the proxy's decision worker processes (default: one per core, as `serve`)")
    parser.add_argument("--photos", type=int, default=200, help="sample photos cycled through")
    parser.add_argument("--uplink-mbit-s", type=float, default=20.0)
    parser.add_argument("--uplink-photos", type=int, default=30)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "proxy_load.json")
    args = parser.parse_args(argv)

    logs = Path(tempfile.mkdtemp(prefix="adacompress-proxy-load-"))  # the servers' stderr, named if one fails
    files = sample_files(None, args.photos)
    uploads = [path.read_bytes() for path in files]
    fake_port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": DEFAULT_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": DEFAULT_SECRET_KEY,
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_REKOGNITION": f"http://127.0.0.1:{fake_port}"}
    env.pop("ADACOMPRESS_REDIS_URL", None)
    host = machine()
    fake = start(["fake-cloud", "--provider", "rekognition", "--port", str(fake_port)], env,
                 f"http://127.0.0.1:{fake_port}/", logs / "fake.log")
    try:
        runs = {mode: load(mode, env, uploads, args, logs, fake.pid)
                for mode in ("passthrough", "adacompress", "one_worker")}
    finally:
        stop(fake)
    photos = decoded(files[: args.uplink_photos])
    two_mp = [mosaic(photos, 1600, 1200, seed) for seed in range(args.uplink_photos)]
    felt = uplink(env, {"sample_photos": uploads[: args.uplink_photos], "2MP": two_mp}, args, logs)
    share = runs["adacompress"]["throughput_per_s"] / runs["passthrough"]["throughput_per_s"]
    report = {
        "benchmark": "proxy_load",
        "setup": f"fake Rekognition (Lite0 labels) and `adacompress serve --backend rekognition --workers "
                 f"{args.workers}` as processes on this machine; {args.concurrency} concurrent clients; "
                 f"{len(uploads)} sample photos as they are, cycled",
        "runs": runs,
        "throughput_vs_passthrough": round(share, 3),
        "rss_growth_mb": round(runs["adacompress"]["rss_mb_at_end"] - runs["adacompress"]["rss_mb_after_warmup"], 1),
        "uplink": {"mbit_s": args.uplink_mbit_s, **felt},
        "target": {"throughput_vs_passthrough": TARGET_THROUGHPUT_SHARE,
                   "met": share >= TARGET_THROUGHPUT_SHARE},
        "machine": host,
    }
    write_json(report, args.out)
    print(f"throughput {runs['adacompress']['throughput_per_s']}/s vs pass-through "
          f"{runs['passthrough']['throughput_per_s']}/s ({share:.0%}); RSS {runs['adacompress']['rss_mb_after_warmup']}"
          f" -> {runs['adacompress']['rss_mb_at_end']} MB; uplink p50 through the proxy vs direct: "
          + ", ".join(f"{name} {r['proxy_p50_vs_direct']:.2f}x" for name, r in felt.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
