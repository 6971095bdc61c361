"""Decision benchmark: `decide(upload bytes)` for a shipped agent at 0.2, 2 and 12 megapixels.

At 0.2 MP the uploads are the sample photos as they are (never pre-shrunk); at 2 and 12 MP they are
mosaics tiled from crops of those photos at their own resolution, saved as JPEG q=90. In the same run,
per image: the floor (decode the upload, encode it once at the decided action) and the local backend's
`recognize()` of the same bytes. Absolute times differ threefold between hosts, so the targets are
ratios within this run: decide p50 <= 0.35x recognize p50 at 0.2 MP, and <= 1.5x the floor at 12 MP.
The size estimator's error (estimated against real full-size bytes, every rung and the reference) is
measured on the same images, and `early_exits` says how many decisions the screen ended after two of the probe's
five passes (`adacompress/agents/screen.py`) and what those and the rest cost.

    python bench/bench_decide.py --out bench/results/decide.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from _common import REPO_ROOT, decoded, machine, mosaic, percentiles, sample_files, time_each, write_json

from adacompress.agents.policies import load_policy
from adacompress.cloud_backends.local import LocalBackend
from adacompress.codec import encode
from adacompress.images import decode
from adacompress.rate import estimate_bytes, estimate_ratios
from adacompress.upload import Upload

SIZES = {"0.2MP": None, "2MP": (1600, 1200), "12MP": (4000, 3000)}
TARGETS = {"decide_vs_recognize_at_0.2MP": 0.35, "decide_vs_floor_at_12MP": 1.5}


def size_errors(uploads: list[bytes], policy) -> dict:
    """|estimate / real - 1| of every rung's size ratio and of the reference's bytes."""
    ratio_errors, reference_errors = [], []
    for data in uploads:
        upload = Upload.of(data)
        actions = policy.ladder.actions
        real = np.array([encode(upload.image, a).info.bytes for a in actions], dtype=float)
        real_reference = encode(upload.image, policy.reference).info.bytes
        estimated = estimate_ratios(upload, actions, policy.reference)
        ratio_errors.append(np.abs(estimated / (real / real_reference) - 1))
        reference_errors.append(abs(estimate_bytes(upload, policy.reference) / real_reference - 1))
    per_rung = np.asarray(ratio_errors)
    return {
        "rung_ratio_abs_rel_error_p50": {a.label: round(float(v), 4) for a, v in
                                         zip(policy.ladder.actions, np.median(per_rung, axis=0), strict=True)},
        "rung_ratio_abs_rel_error_p90_all_rungs": round(float(np.percentile(per_rung, 90)), 4),
        "reference_bytes_abs_rel_error_p50": round(float(np.median(reference_errors)), 4),
        "reference_bytes_abs_rel_error_p90": round(float(np.percentile(reference_errors, 90)), 4),
    }


def bench_size(uploads: list[bytes], policy, backend: LocalBackend, warmup: int) -> dict:
    decisions = {}

    def decide(data: bytes) -> None:
        decisions[id(data)] = policy.decide(data)

    decide_ms = time_each(uploads, decide, warmup)
    floor_ms = time_each(uploads, lambda d: encode(decode(d), decisions[id(d)].action), warmup)
    recognize_ms = time_each(uploads, backend.recognize, warmup)
    first = Upload.of(uploads[0]).image
    exited = [decisions[id(d)].exited_early for d in uploads]
    return {
        "images": len(uploads), "size_px": list(first.size),
        "mean_upload_bytes": round(float(np.mean([len(d) for d in uploads]))),
        "decide": percentiles(decide_ms),
        "early_exits": {"share": round(float(np.mean(exited)), 3),
                        "exited": percentiles([ms for ms, e in zip(decide_ms, exited, strict=True) if e] or [0.0]),
                        "probed": percentiles([ms for ms, e in zip(decide_ms, exited, strict=True) if not e] or [0.0])},
        "floor_decode_plus_one_encode": percentiles(floor_ms),
        "local_backend_recognize": percentiles(recognize_ms),
        "decide_p50_vs_floor": round(float(np.median(decide_ms) / np.median(floor_ms)), 3),
        "decide_p50_vs_recognize": round(float(np.median(decide_ms) / np.median(recognize_ms)), 3),
        "size_estimates": size_errors(uploads, policy),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "decide.json")
    parser.add_argument("--images", type=Path, help="photo folder (default: ../shared/data/imagenet-sample)")
    parser.add_argument("--agent", default="pretrained:local-lite2")
    parser.add_argument("--count", type=int, default=100, help="photos timed at 0.2 MP")
    parser.add_argument("--mosaics", type=int, default=12, help="mosaics timed at each larger size")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before timing")
    args = parser.parse_args(argv)

    host = machine()
    policy = load_policy(args.agent)
    backend = LocalBackend()
    files = sample_files(args.images, args.count)
    photos = decoded(files)
    results = {}
    for label, size in SIZES.items():
        uploads = [p.read_bytes() for p in files] if size is None else \
            [mosaic(photos, *size, seed=seed) for seed in range(args.mosaics)]
        results[label] = bench_size(uploads, policy, backend, args.warmup)
        print(f"{label}: decide p50 {results[label]['decide']['p50_ms']:.1f} ms, floor "
              f"{results[label]['floor_decode_plus_one_encode']['p50_ms']:.1f} ms, recognize "
              f"{results[label]['local_backend_recognize']['p50_ms']:.1f} ms", flush=True)
    measured = {"decide_vs_recognize_at_0.2MP": results["0.2MP"]["decide_p50_vs_recognize"],
                "decide_vs_floor_at_12MP": results["12MP"]["decide_p50_vs_floor"]}
    targets = {name: {"target": limit, "measured": measured[name], "pass": measured[name] <= limit}
               for name, limit in TARGETS.items()}
    write_json({"benchmark": "decide", "agent": args.agent, "policy_version": policy.version,
                "featurizer": policy.featurizer.name, "machine": host, "results": results, "targets": targets},
               args.out)
    for name, target in targets.items():
        print(f"{name}: {target['measured']:.2f} (target <= {target['target']}) {'PASS' if target['pass'] else 'FAIL'}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
