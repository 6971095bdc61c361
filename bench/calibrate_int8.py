"""Measure the activation ranges of the int8 surrogate once, and what 8 bits cost and buy.

The ranges are min-max over what the probe shows the surrogate: the working copy of every eighth even
(training) photo and its probed cheap rungs. They are written to `adacompress/calibration/`, from which
`cnn.py` quantizes the graph on any machine, offline. Then, on the odd (held-out) photos as the probe sees
them: how often the int8 and float32 surrogates agree on the top-1 class and how far their probabilities
differ, and the time of one pass at one onnxruntime thread (as a decision worker runs it), both graphs
alternating in the same run. What it means for a policy is measured by the agents trained on it
(`adacompress bench`).

    python bench/calibrate_int8.py --out bench/results/int8.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from _common import IMAGENET_SAMPLE, REPO_ROOT, machine, percentiles, write_json
from onnxruntime.quantization import CalibrationDataReader

from adacompress.cnn import MODELS, build_onnx, calibration_path, ensure_graph, preprocess, quantize_int8
from adacompress.codec import DEFAULT_LADDER
from adacompress.features import _softmax as softmax
from adacompress.features import probed_actions
from adacompress.images import ImageSet, decode
from adacompress.upload import Upload

VARIANT = "lite1-int8"


def surrogate_views(images: ImageSet, indices: range, input_px: int) -> list[np.ndarray]:
    """Each photo's working copy and its probed rungs, preprocessed as the surrogate sees them."""
    views = []
    for i in indices:
        working = Upload(images.load(i)).working()
        for image in [working.image, *(decode(working.encoded(a).data) for a in probed_actions(DEFAULT_LADDER))]:
            views.append(preprocess(image, input_px)[None])
    return views


class Batches(CalibrationDataReader):
    def __init__(self, batches: list[np.ndarray]) -> None:
        self._batches = iter(batches)

    def get_next(self) -> dict | None:
        batch = next(self._batches, None)
        return None if batch is None else {"pixels": batch}


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=IMAGENET_SAMPLE)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "int8.json")
    parser.add_argument("--keep-ranges", action="store_true", help="score the shipped ranges instead of remeasuring")
    args = parser.parse_args(argv)

    host = machine()
    spec = MODELS[VARIANT]
    images = ImageSet.from_folder(args.images)
    ranges = calibration_path(spec)
    if not args.keep_ranges:
        ranges.parent.mkdir(exist_ok=True)
        ranges.unlink(missing_ok=True)
        calibration = surrogate_views(images, range(0, len(images), 16), spec.input_px)
        quantize_int8(build_onnx(spec), ranges, Batches(calibration))
        print(f"ranges from {len(calibration)} views written to {ranges}", flush=True)
    float32 = session(ensure_graph(MODELS[VARIANT.removesuffix("-int8")]))
    int8 = session(ensure_graph(spec))
    scored = surrogate_views(images, range(1, len(images), 10), spec.input_px)
    agree, gaps, times = [], [], {"float32": [], "int8": []}
    for x in scored:
        outputs = {}
        for name, model in (("float32", float32), ("int8", int8)):
            started = time.perf_counter_ns()
            outputs[name] = model.run(["logits"], {"pixels": x})[0][0]
            times[name].append((time.perf_counter_ns() - started) / 1e6)
        agree.append(outputs["float32"].argmax() == outputs["int8"].argmax())
        gaps.append(np.abs(softmax(outputs["float32"]) - softmax(outputs["int8"])).max())
    report = {
        "benchmark": "int8",
        "variant": VARIANT,
        "calibration": {"photos": "every 16th file, even positions (training side)",
                        "views": "working copy and the probed rungs", "method": "min-max", "file": ranges.name},
        "scored": {"photos": "every 10th file, odd positions (held out)", "views": len(scored)},
        "top1_agreement": round(float(np.mean(agree)), 4),
        "max_probability_gap_p50": round(float(np.median(gaps)), 4),
        "max_probability_gap_p90": round(float(np.percentile(gaps, 90)), 4),
        "one_thread_pass": {name: percentiles(ms) for name, ms in times.items()},
        "int8_vs_float32_p50": round(float(np.median(times["int8"]) / np.median(times["float32"])), 3),
        "machine": host,
    }
    write_json(report, args.out)
    print(f"top-1 agreement {report['top1_agreement']:.1%}, int8 pass {report['int8_vs_float32_p50']:.2f}x float32")
    return 0


if __name__ == "__main__":
    sys.exit(main())
