"""Observation trade-off: what each candidate observation costs per decision, and what it saves in bytes.

For each featurizer, on the sample photos as they are: the decision cost (decode the upload, observe,
encode the chosen rung; p50, and as a ratio to the local backend's `recognize()` in the same run), and
how few bytes a policy reading it can send at the accuracy targets (98% under the paper's in-labels
rule, 92% under strict top-1). The bytes come from a per-rung logistic regression fitted on the even
photos' observations and every rung's real answer, read on the odd (held-out) photos: the cheapest rung
whose predicted hit probability clears a threshold, the threshold swept to the target accuracy. It
compares observations on an equal footing; it is not an agent (the shipped agents are benched by
`adacompress bench`).

    python bench/bench_observation.py --out bench/results/observation.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from _common import IMAGENET_SAMPLE, REPO_ROOT, hit_probabilities, machine, percentiles, time_each, write_json

from adacompress.cloud_backends.local import LocalBackend
from adacompress.codec import DEFAULT_LADDER, REFERENCE_ACTION, encode
from adacompress.features import make_featurizer
from adacompress.images import ImageSet, list_images
from adacompress.outcomes import OutcomeTable
from adacompress.scoring import HitRule, Scoring
from adacompress.upload import Upload

FEATURIZERS = ("probe:lite1", "probe:lite1-int8", "probe:lite1:2", "probe:lite1:1", "probe:lite1:0", "probe:lite0",
               "probe:lite0:1")
TARGETS = {HitRule.IN_LABELS: 0.98, HitRule.TOP1: 0.92}


def bytes_at_accuracy(obs: np.ndarray, hits: np.ndarray, sizes: np.ndarray, reference: np.ndarray,
                      train: np.ndarray, test: np.ndarray, target: float) -> dict:
    """Held-out bytes / reference bytes at the lowest threshold that reaches `target` accuracy."""
    probability = hit_probabilities(obs, hits, train, test)
    best = None
    for threshold in np.linspace(0.3, 0.999, 300):
        eligible = probability >= threshold
        eligible[:, -1] = True
        choice = eligible.argmax(axis=1)
        accuracy = float(hits[test, choice].mean())
        ratio = float(sizes[test, choice].sum() / reference[test].sum())
        if accuracy >= target and (best is None or ratio < best["bytes_vs_reference"]):
            best = {"bytes_vs_reference": round(ratio, 4), "accuracy": round(accuracy, 4)}
    return best or {"bytes_vs_reference": None, "accuracy": None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "observation.json")
    parser.add_argument("--images", type=Path, default=IMAGENET_SAMPLE)
    parser.add_argument("--timed", type=int, default=100, help="photos timed per featurizer")
    args = parser.parse_args(argv)

    host = machine()
    images = ImageSet.from_folder(args.images)
    backend = LocalBackend()
    table = OutcomeTable(images, backend, DEFAULT_LADDER, REFERENCE_ACTION)
    n = len(images)
    sizes = np.array([table.sizes(i) for i in range(n)], dtype=float)
    reference = np.array([table.reference_bytes(i) for i in range(n)], dtype=float)
    hits = {rule: np.zeros((n, len(DEFAULT_LADDER)), dtype=bool) for rule in TARGETS}
    for i in range(n):
        for rung in range(len(DEFAULT_LADDER)):
            for rule in TARGETS:
                hits[rule][i, rung] = Scoring(rule).hit(table.reference(i)[0], table.answer(i, DEFAULT_LADDER[rung]))
    print(f"{n} photos, {backend.stats.calls} backend calls", flush=True)
    train, test = np.arange(0, n, 2), np.arange(1, n, 2)
    timed = [p.read_bytes() for p in list_images(args.images)[:: max(1, n // args.timed)][: args.timed]]
    recognize_ms = time_each(timed, backend.recognize, 3)
    rows = []
    for name in FEATURIZERS:
        featurizer = make_featurizer(name)
        obs = np.stack([featurizer.observe(Upload(images.load(i))) for i in range(n)])

        def decision(data: bytes, featurizer=featurizer) -> None:
            upload = Upload.of(data)
            featurizer.observe(upload)
            encode(upload.image, DEFAULT_LADDER[0])

        cost = percentiles(time_each(timed, decision, 3))
        row = {"featurizer": name, "dim": featurizer.dim, "surrogate_passes": featurizer.rungs + 1,
               "decision": cost, "decision_p50_vs_recognize": round(cost["p50_ms"] / float(np.median(recognize_ms)), 3)}
        for rule, target in TARGETS.items():
            row[f"{rule.value}_at_{target:.0%}"] = bytes_at_accuracy(obs, hits[rule], sizes, reference, train, test,
                                                                     target)
        rows.append(row)
        print(f"{name:<16} {cost['p50_ms']:7.1f} ms ({row['decision_p50_vs_recognize']:.2f}x recognize)  "
              f"in-labels {row['in-labels_at_98%']['bytes_vs_reference']}  "
              f"top1 {row['top1_at_92%']['bytes_vs_reference']}", flush=True)
    write_json({"benchmark": "observation", "images": {"source": str(args.images), "count": n,
                                                      "fit": "even files", "scored": "odd files"},
                "machine": host, "local_backend_recognize": percentiles(recognize_ms), "rows": rows}, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
