"""Study: what size caps buy, and how much of it a policy can see coming.

Every sample photo is sent to the local backend (EfficientNet-Lite2) at every JPEG quality of the
default ladder, at full size and under each size cap in CAPS, and the surrogate (Lite1) is shown the
views a probe could use. From those answers, on the held-out (odd) photos: each fixed action's
accuracy and bytes, the per-image oracle over several ladders, how many backend calls the monotone
search needs per image on each ladder, how often answers break monotonicity in size, and the bytes a
per-rung logistic policy reads off each candidate observation (fitted on the even photos) at the
accuracy targets. Collecting takes about 35 minutes on 2 cores; the answers are kept in a pickle, so
the analysis reruns in seconds.

    python bench/study_sizes.py --cache /tmp/size_study.pkl --out bench/results/size_study.json
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np
from _common import IMAGENET_SAMPLE, REPO_ROOT, hit_probabilities, machine, write_json

from adacompress.cloud_backends.local import LocalBackend, softmax
from adacompress.cnn import shared_model
from adacompress.codec import REFERENCE_ACTION, Action, Ladder
from adacompress.features import surrogate_numbers
from adacompress.images import decode, list_images
from adacompress.outcomes import OutcomeTable
from adacompress.upload import Upload

QUALITIES = (5, 10, 15, 25, 35, 45, 55, 65, 75, 85, 95)
CAPS = (0, 288, 224, 192, 160, 128, 96)
GRID = [(cap, q) for cap in CAPS for q in QUALITIES]
PROBE_VIEWS = ["original", *(f"jpeg:{q}" for q in (5, 10, 15, 25)),
               *(f"jpeg:{q}@{cap}" for cap in (288, 192, 128) for q in (5, 15))]
TARGETS = {"in-labels": 0.98, "top1": 0.92}
LADDERS = {
    "quality only (default)": "jpeg:5,10,15,25,35,45,55,65,75,85,95",
    "+@192,@128 (shipped -res)": "jpeg:5,10,15,25,35,45,55,65,75,85,95;jpeg:5,10,15,25,35,45,55,75@192;"
                                 "jpeg:5,10,15,25,35,45,55,75@128",
    "+@192,@128,@96": "jpeg:5,10,15,25,35,45,55,65,75,85,95;jpeg:5,10,15,25,35,45,55,75@192;"
                      "jpeg:5,10,15,25,35,45,55,75@128;jpeg:5,10,15,25,35,55,75@96",
    "+@288,@192,@128, every quality": "jpeg:5,10,15,25,35,45,55,65,75,85,95;jpeg:5,10,15,25,35,45,55,65,75,85,95@288;"
                                      "jpeg:5,10,15,25,35,45,55,65,75,85,95@192;"
                                      "jpeg:5,10,15,25,35,45,55,65,75,85,95@128",
}
OBSERVATIONS = {
    "size ratios only": [],
    "probe, full-size q=5..25 (shipped)": ["jpeg:5", "jpeg:10", "jpeg:15", "jpeg:25"],
    "probe, q=5 at each size": ["jpeg:5", "jpeg:5@192", "jpeg:5@128"],
    "probe, q=5 and q=15 at each size": ["jpeg:5", "jpeg:15", "jpeg:5@192", "jpeg:15@192", "jpeg:5@128",
                                         "jpeg:15@128"],
}


def collect(files: list[Path], cache: Path) -> dict:
    """Backend answers (top-5 label names) and bytes for every grid action, and the surrogate's softmax per view."""
    rows = pickle.loads(cache.read_bytes()) if cache.is_file() else {}
    backend, surrogate = LocalBackend("lite2"), shared_model("lite1")
    for n, path in enumerate(files):
        if path.name in rows:
            continue
        image = decode(path.read_bytes())
        upload = Upload(image, path.name)
        reference = upload.encoded(REFERENCE_ACTION)
        row = {"size": image.size, "ref_bytes": reference.info.bytes, "ref": backend.recognize(reference.data).names}
        for cap, q in GRID:
            encoded = upload.encoded(Action("jpeg", q, cap))
            row[(cap, q)] = (encoded.info.bytes, backend.recognize(encoded.data).names)
        views = [image] + [decode(upload.encoded(Action.parse(v)).data) for v in PROBE_VIEWS[1:]]
        row["lite1"] = softmax(surrogate.run(views)[1]).astype(np.float32)
        rows[path.name] = row
        if n % 50 == 49:
            cache.write_bytes(pickle.dumps(rows))
            print(f"{n + 1} photos", flush=True)
    cache.write_bytes(pickle.dumps(rows))
    return rows


def hits(rows: dict, names: list[str], rule: str) -> np.ndarray:
    out = np.zeros((len(names), len(GRID)), bool)
    for i, name in enumerate(names):
        top = rows[name]["ref"][0]
        for j, action in enumerate(GRID):
            labels = rows[name][action][1]
            out[i, j] = labels[0] == top if rule == "top1" else top in labels
    return out


def probe_features(row: dict, views: list[str]) -> list[float]:
    """The probe's surrogate numbers (`features.surrogate_numbers`) from the stored softmax of each view."""
    probs = row["lite1"]
    return [float(v) for v in surrogate_numbers(probs[[0, *(PROBE_VIEWS.index(v) for v in views)]])]


def policy_bytes(x: np.ndarray, hit: np.ndarray, size: np.ndarray, train: np.ndarray, test: np.ndarray,
                 target: float) -> dict | None:
    """Held-out bytes of the cheapest rung whose predicted hit probability clears a threshold swept to `target`."""
    probability = hit_probabilities(x, hit, train, test, l2=3.0, steps=25)
    best = None
    rows = np.arange(test.sum())
    for threshold in np.linspace(0.3, 0.9995, 400):
        sure = probability >= threshold
        choice = np.where(sure, size[test], np.inf).argmin(1)
        sent = np.where(sure.any(1), size[test][rows, choice], 1.0)  # nobody sure: the reference
        kept = np.where(sure.any(1), hit[test][rows, choice], True)
        if kept.mean() >= target and (best is None or sent.mean() < best["bytes_vs_reference"]):
            best = {"bytes_vs_reference": round(float(sent.mean()), 4), "accuracy": round(float(kept.mean()), 4)}
    return best


class _ReplayedTable(OutcomeTable):
    """The monotone search replayed over stored answers, counting the answers it asks for."""

    def __init__(self, ladder: Ladder, hit: np.ndarray) -> None:
        self.ladder, self.reference_action, self._hit, self.asked = ladder, REFERENCE_ACTION, hit, set()

    def _real_hit(self, index: int, rung: int) -> bool:
        self.asked.add((index, rung))
        return bool(self._hit[index, rung])

    def known(self, index: int, rung: int) -> bool:
        return (index, rung) in self.asked


def analyze(rows: dict) -> dict:
    names = sorted(rows)
    odd = np.arange(len(names)) % 2 == 1
    even = ~odd
    size = np.array([[rows[n][a][0] / rows[n]["ref_bytes"] for a in GRID] for n in names])
    report = {}
    for rule, target in TARGETS.items():
        hit = hits(rows, names, rule)
        fixed = {f"jpeg:{q}" + (f"@{cap}" if cap else ""): {"accuracy": round(float(hit[odd, j].mean()), 4),
                                                          "bytes_vs_reference": round(float(size[odd, j].mean()), 4)}
                 for j, (cap, q) in enumerate(GRID)}
        good = [(v["bytes_vs_reference"], k) for k, v in fixed.items() if v["accuracy"] >= target]
        ladders = {}
        for name, spec in LADDERS.items():
            ladder = Ladder.parse(spec)
            cols = [GRID.index((a.short_side, a.quality)) for a in ladder.actions]
            replayed = _ReplayedTable(ladder, hit[:, cols])
            agree = np.mean([np.mean(np.array(replayed._search(i)) == hit[i, cols]) for i in range(len(names))])
            reference_rung = ladder.actions.index(REFERENCE_ACTION)
            calls = len({key for key in replayed.asked if key[1] != reference_rung}) / len(names) + 1
            oracle = np.mean([min(size[i, c] for c in cols if hit[i, c]) for i in np.where(odd)[0]])
            observations = {}
            for obs_name, views in OBSERVATIONS.items():
                views = [v for v in views if "@" not in v or f"@{v.split('@')[1]}" in spec]
                x = np.array([probe_features(rows[n], views) + list(size[i, cols]) if views else list(size[i, cols])
                              for i, n in enumerate(names)])
                observations[obs_name] = policy_bytes(x, hit[:, cols], size[:, cols], even, odd, target)
            ladders[name] = {"ladder": spec, "rungs": len(ladder),
                             "oracle_bytes_vs_reference": round(float(oracle), 4),
                             "search_calls_per_image": round(calls, 2),
                             "search_label_agreement": round(float(agree), 4),
                             "logistic_policy_at_target": observations}
        steps = list(zip(CAPS, CAPS[1:], strict=False))
        broken = np.mean([hit[i, GRID.index((small, q))] and not hit[i, GRID.index((large, q))]
                          for i in range(len(names)) for q in QUALITIES for large, small in steps])
        report[rule] = {"target": target, "fixed_heldout": fixed,
                        "best_fixed_at_target": {"action": min(good)[1], "bytes_vs_reference": min(good)[0]},
                        "ladders": ladders, "size_monotonicity_violations": round(float(broken), 4)}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "size_study.json")
    parser.add_argument("--cache", type=Path, required=True, help="pickle of the collected answers (reused)")
    parser.add_argument("--images", type=Path, default=IMAGENET_SAMPLE)
    args = parser.parse_args(argv)
    host = machine()
    files = list_images(args.images)
    rows = collect(files, args.cache)
    report = analyze({f.name: rows[f.name] for f in files})
    write_json({"benchmark": "size_study", "photos": len(files), "fit": "even files", "scored": "odd files",
                "bytes": "mean over photos of bytes / reference bytes (the reward's size term); eval and bench "
                         "report total bytes / total reference bytes, a few points lower",
                "backend": "local:lite2", "surrogate": "lite1", "reference": REFERENCE_ACTION.label,
                "results": report, "machine": host}, args.out)
    for rule, result in report.items():
        print(rule, "best fixed", result["best_fixed_at_target"])
        for name, ladder in result["ladders"].items():
            print(f"  {name}: oracle {ladder['oracle_bytes_vs_reference']}, calls {ladder['search_calls_per_image']}, "
                  f"policies {ladder['logistic_policy_at_target']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
