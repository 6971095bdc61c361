"""What every benchmark shares: timing, percentiles, the machine description, sample photos, JSON output."""

from __future__ import annotations

import io
import json
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime
import PIL
from PIL import Image

from adacompress.agents.screen import fit_logistic
from adacompress.config import settings
from adacompress.images import decode, list_images

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGENET_SAMPLE = REPO_ROOT.parent / "shared" / "data" / "imagenet-sample"


def time_each(items: list, work: Callable, warmup: int) -> list[float]:
    """Milliseconds for `work(item)` on every item, after `warmup` untimed calls."""
    for item in items[:warmup]:
        work(item)
    times = []
    for item in items:
        started = time.perf_counter_ns()
        work(item)
        times.append((time.perf_counter_ns() - started) / 1e6)
    return times


def percentiles(ms: list[float]) -> dict:
    ordered = np.asarray(ms)
    return {"samples": len(ms), "p50_ms": round(float(np.percentile(ordered, 50)), 3),
            "p90_ms": round(float(np.percentile(ordered, 90)), 3), "mean_ms": round(float(ordered.mean()), 3)}


def machine() -> dict:
    """The host as the run saw it; the load average says what else was running (times differ 3x between hosts)."""
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "onnxruntime_threads": settings().onnx_threads,
        "processor": platform.processor() or platform.machine(),
        **cpu_model_and_vnni(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }


def cpu_model_and_vnni() -> dict:
    """The CPU's name and whether it has VNNI, the byte dot product behind fast int8 kernels: one int8 surrogate pass
    cost 0.55x a float32 pass with it and 0.67x without (bench/results/int8.json), so int8 timings differ most."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    first = {}  # each key's value on the first core
    for key, _, value in (line.partition(":") for line in info.splitlines()):
        first.setdefault(key.strip(), value.strip())
    flags = first.get("flags", "").split()
    return {"cpu_model": first.get("model name", ""), "vnni": any(f in flags for f in ("avx512_vnni", "avx_vnni"))}


def sample_files(folder: Path | None, count: int) -> list[Path]:
    """`count` files evenly spaced through the folder (default: ../shared/data/imagenet-sample)."""
    folder = folder or IMAGENET_SAMPLE
    paths = list_images(folder)
    return [paths[int(i)] for i in np.linspace(0, len(paths) - 1, min(count, len(paths)))]


def mosaic(photos: list[Image.Image], width: int, height: int, seed: int, tile: tuple[int, int] = (400, 300)) -> bytes:
    """A `width` x `height` JPEG (q=90, like a camera's) tiled from crops of real photos at their own resolution.

    Upscaling would make large images unnaturally smooth and cheap to encode; tiles keep real detail.
    """
    rng = np.random.default_rng(seed)
    canvas = Image.new("RGB", (width, height))
    tw, th = tile
    for top in range(0, height, th):
        for left in range(0, width, tw):
            photo = photos[int(rng.integers(len(photos)))]
            x = int(rng.integers(0, max(1, photo.width - tw + 1)))
            y = int(rng.integers(0, max(1, photo.height - th + 1)))
            canvas.paste(photo.crop((x, y, x + tw, y + th)), (left, top))
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def decoded(files: list[Path]) -> list[Image.Image]:
    return [decode(p.read_bytes()) for p in files]


def write_json(report: dict, out: Path) -> None:
    report = {"date": datetime.now(UTC).isoformat(timespec="seconds"), **report}
    report.setdefault("machine", {})["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, out)


def hit_probabilities(obs: np.ndarray, hits: np.ndarray, train: np.ndarray, test: np.ndarray,
                      l2: float = 1.0, steps: int = 30) -> np.ndarray:
    """Each test photo's hit probability per rung, from a logistic regression per rung fitted on the train
    photos' standardised observations (1.0 for a rung that always or never hit in training)."""
    x = (obs - obs[train].mean(axis=0)) / (obs[train].std(axis=0) + 1e-6)
    design = np.column_stack([x[test], np.ones(len(x[test]))])
    probability = np.ones((len(design), hits.shape[1]))
    for rung in range(hits.shape[1]):
        y = hits[train, rung].astype(float)
        if 0 < y.mean() < 1:
            probability[:, rung] = 1.0 / (1.0 + np.exp(-(design @ fit_logistic(x[train], y, l2, steps))))
    return probability
