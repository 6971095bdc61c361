"""Inference benchmark: milliseconds per image for the backend (lite2), the embedding (lite0) and the agent's probe.

Inputs are 224 px-class: each photo resized so its short side is 256 px (the usual resize before a
224 crop), and for the backend uploaded as JPEG q=75 bytes, as the env's reference upload is.
Timings exclude warm-up. Batch 1 is what one request pays; batch 32 is the cost per image when work
is batched (for the backend: decode every upload, then one model run). Targets are checked on the
batch-1 medians. The agent's probe (what a shipped agent computes before each upload: the cheapest
rungs encoded and shown to the Lite1 surrogate, every rung's size) has no target; it is recorded.
Photos come from ../shared/data/imagenet-sample when present, else the bundled ones.

    python bench/bench_inference.py --out bench/results/inference.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime
from _common import machine, time_each
from PIL import Image

from adacompress.cloud_backends.local import LocalBackend
from adacompress.cnn import shared_model
from adacompress.codec import REFERENCE_ACTION, encode
from adacompress.demo_images import demo_photos
from adacompress.features import DEFAULT_FEATURIZER, Featurizer, make_featurizer
from adacompress.images import decode, list_images, open_image

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGENET_SAMPLE = REPO_ROOT.parent / "shared" / "data" / "imagenet-sample"
SHORT_SIDE_PX = 256
TARGETS_P50_MS = {"featurizer": 10.0, "local_backend": 15.0}
"""Batch-1 median per image that each part must stay under on a 2-core CPU."""


def load_photos(folder: Path | None, count: int) -> tuple[str, list[Image.Image]]:
    """`count` photos, evenly spaced through the folder (or the bundled photos, cycled)."""
    folder = folder or (IMAGENET_SAMPLE if IMAGENET_SAMPLE.is_dir() else None)
    if folder is None:
        photos = demo_photos()
        return "bundled demo photos", [photos[i % len(photos)] for i in range(count)]
    paths = list_images(folder)
    picked = [paths[int(i)] for i in np.linspace(0, len(paths) - 1, min(count, len(paths)))]
    return str(folder), [open_image(p) for p in picked]


def to_224_class(image: Image.Image) -> Image.Image:
    scale = SHORT_SIDE_PX / min(image.size)
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        Image.Resampling.BILINEAR)


def summary(per_image_ms: list[float], batch: int) -> dict:
    ordered = np.asarray(per_image_ms)
    return {
        "batch": batch,
        "samples": len(per_image_ms),
        "ms_per_image_p50": round(float(np.percentile(ordered, 50)), 3),
        "ms_per_image_p90": round(float(np.percentile(ordered, 90)), 3),
        "ms_per_image_mean": round(float(ordered.mean()), 3),
        "ms_per_image_min": round(float(ordered.min()), 3),
    }


def batches(items: list, size: int, count: int) -> list[list]:
    """`count` batches of `size`, cycling through `items`."""
    return [[items[(b * size + i) % len(items)] for i in range(size)] for b in range(count)]


def bench(images: list[Image.Image], batch_size: int, batch_runs: int, warmup: int) -> dict:
    featurizer = Featurizer()
    probe = make_featurizer(DEFAULT_FEATURIZER)
    featurizer_model = shared_model(featurizer.variant)
    backend = LocalBackend()
    backend_model = shared_model(backend.variant)
    uploads = [encode(image, REFERENCE_ACTION).data for image in images]

    def per_image(batch_ms: list[float]) -> list[float]:
        return [ms / batch_size for ms in batch_ms]

    image_batches = batches(images, batch_size, batch_runs)
    upload_batches = batches(uploads, batch_size, batch_runs)
    return {
        "featurizer": {
            "model": f"efficientnet-{featurizer.variant}",
            "what": "embed(image): preprocess + onnxruntime, 1280-d features",
            "batch_1": summary(time_each(images, featurizer.embed, warmup), 1),
            f"batch_{batch_size}": summary(
                per_image(time_each(image_batches, featurizer_model.run, 1)), batch_size),
        },
        "agent_probe": {
            "model": f"efficientnet-{probe.variant}",
            "what": f"{probe.name}: {probe.rungs} rungs encoded, decoded and classified, plus the original; "
                    f"{len(probe.ladder)} rung sizes estimated from a reduced copy",
            "batch_1": summary(time_each(images, probe.embed, warmup), 1),
        },
        "local_backend": {
            "model": f"efficientnet-{backend.variant}",
            "what": "recognize(JPEG q=75 bytes): decode + preprocess + onnxruntime + top-5 labels",
            "batch_1": summary(time_each(uploads, backend.recognize, warmup), 1),
            f"batch_{batch_size}": summary(
                per_image(time_each(upload_batches, lambda b: backend_model.run([decode(d) for d in b]), 1)),
                batch_size),
            "mean_upload_bytes": round(float(np.mean([len(d) for d in uploads]))),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "inference.json")
    parser.add_argument("--images", type=Path, help="photo folder (default: ../shared/data/imagenet-sample)")
    parser.add_argument("--count", type=int, default=100, help="photos timed one at a time")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batch-runs", type=int, default=8, help="timed batches per model")
    parser.add_argument("--warmup", type=int, default=8, help="untimed calls before timing")
    args = parser.parse_args(argv)

    host = machine()  # before the run, so the load average shows what else was running
    source, photos = load_photos(args.images, args.count)
    images = [to_224_class(photo) for photo in photos]
    results = bench(images, args.batch_size, args.batch_runs, args.warmup)
    targets = {}
    for part, limit_ms in TARGETS_P50_MS.items():
        measured = results[part]["batch_1"]["ms_per_image_p50"]
        targets[f"{part}_p50_ms"] = {"target": limit_ms, "measured": measured, "pass": measured <= limit_ms}
    report = {
        "benchmark": "inference",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "images": {"source": source, "count": len(images), "short_side_px": SHORT_SIDE_PX,
                   "mean_size_px": [round(statistics.mean(im.width for im in images)),
                                    round(statistics.mean(im.height for im in images))]},
        "machine": host,
        "results": results,
        "targets": targets,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, args.out)

    print(f"{len(images)} photos from {source}, short side {SHORT_SIDE_PX} px; {host['cpu_count']} CPUs "
          f"(load {host['load_average_1m_at_start']}), onnxruntime {onnxruntime.__version__}")
    print(f"{'part':<15}{'batch':>6}{'p50 ms':>9}{'p90 ms':>9}{'mean ms':>9}")
    for part, result in results.items():
        for key, stats in result.items():
            if key.startswith("batch_"):
                print(f"{part:<15}{stats['batch']:>6}{stats['ms_per_image_p50']:>9.2f}"
                      f"{stats['ms_per_image_p90']:>9.2f}{stats['ms_per_image_mean']:>9.2f}")
    for name, target in targets.items():
        print(f"{name}: {target['measured']:.2f} <= {target['target']:.0f} "
              f"{'PASS' if target['pass'] else 'FAIL'}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
