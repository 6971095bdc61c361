"""Study: how far can any observation built on the surrogate go on the `-res` ladder?

The shipped probe shows the surrogate (Lite1) the photo at four full-size qualities; the issue's targets for the
`-res` agents (0.12 of the reference bytes at 98% in-labels, 0.25 at 92% top-1) ask a policy to find the photos
that keep the hidden model's answer at 128 px. This study gives the surrogate far more than a probe could
afford: every one of the ladder's 27 rungs, each encoded exactly as it would be uploaded, decoded and classified.
From the backend's (Lite2) answers on the same rungs it scores, on the held-out (odd) photos:
- the shipped probe's views, and every rung's own view (28 passes with the photo: a bound on what the
  surrogate can tell);
- Lite0 (the other surrogate shipped) on the same views, alone and beside Lite1;
- the backend's own model (Lite2) as the surrogate, on the shipped probe's views and on those plus q=5 and q=15 at each
  size cap: not available for a cloud, whose model is hidden, so a bound on what a surrogate that fails like the
  backend would tell;
- the shipped probe fitted on fewer training photos (what more labels would buy);
- the surrogate standing in for the backend: send the cheapest rung whose surrogate answer keeps the surrogate's
  own reference answer, with a confidence bar swept to the target;
- how often the surrogate and the backend agree on whether a rung keeps the answer.
Policies are per-rung logistic regressions fitted on the even photos (as in `study_sizes.py`), each sending
the cheapest rung whose predicted hit probability clears a threshold swept to the target. Bytes are total bytes
over total reference bytes, as `eval` and the README count them. Collecting takes about 12 minutes on 2 cores;
the answers are kept in a pickle, so the analysis reruns in seconds.

    python bench/study_ceiling.py --cache /tmp/ceiling.pkl --out bench/results/ceiling_study.json
"""

from __future__ import annotations

import argparse
import pickle
import sys
from functools import partial
from pathlib import Path

import numpy as np
from _common import IMAGENET_SAMPLE, REPO_ROOT, hit_probabilities, machine, write_json

from adacompress.cloud_backends.local import LocalBackend, softmax
from adacompress.cnn import shared_model
from adacompress.codec import REFERENCE_ACTION, Ladder
from adacompress.features import surrogate_numbers
from adacompress.images import decode, list_images
from adacompress.upload import Upload

RES_LADDER = Ladder.parse("jpeg:5,10,15,25,35,45,55,65,75,85,95;jpeg:5,10,15,25,35,45,55,75@192;"
                          "jpeg:5,10,15,25,35,45,55,75@128")
ACTIONS = [*RES_LADDER.actions, REFERENCE_ACTION]
SHIPPED_VIEWS = [0, 1, 2, 3]
"""Rungs the shipped probe shows the surrogate: full-size q=5..25."""
EIGHT_VIEWS = [*SHIPPED_VIEWS, *(rung for rung, a in enumerate(RES_LADDER.actions)
                                 if a.short_side and a.quality in (5, 15))]
"""Those, plus q=5 and q=15 at each size cap."""
TARGETS = {"in-labels": 0.98, "top1": 0.92}
THRESHOLDS = np.concatenate([np.linspace(0.0, 0.99, 199), 1 - np.logspace(-2.3, -5, 60)])


def collect(files: list[Path], cache: Path) -> dict:
    """Per photo: each action's bytes and the backend's top-5 names; the surrogate's softmax on the photo and on
    each action's decoded upload (float16: 28 views x 1000 classes)."""
    rows = pickle.loads(cache.read_bytes()) if cache.is_file() else {}
    backend, surrogate = LocalBackend("lite2"), shared_model("lite1")
    for n, path in enumerate(files):
        if path.name in rows:
            continue
        upload = Upload(decode(path.read_bytes()), path.name)
        encoded = [upload.encoded(action) for action in ACTIONS]
        views = [upload.image] + [decode(e.data) for e in encoded]
        rows[path.name] = {"bytes": np.array([e.info.bytes for e in encoded]),
                           "names": [backend.recognize(e.data).names for e in encoded],
                           "lite1": softmax(surrogate.run(views)[1]).astype(np.float16)}
        if n % 50 == 49:
            cache.write_bytes(pickle.dumps(rows))
            print(f"{n + 1} photos", flush=True)
    others = {variant: shared_model(variant) for variant in ("lite2", "lite0")}  # the backend's own, the smaller
    for path in files:
        missing = [variant for variant in others if variant not in rows[path.name]]
        if missing:  # each photo decoded and its EIGHT_VIEWS encoded once for both models
            upload = Upload(decode(path.read_bytes()), path.name)
            views = [upload.image] + [decode(upload.encoded(RES_LADDER[v]).data) for v in EIGHT_VIEWS]
            for variant in missing:
                rows[path.name][variant] = softmax(others[variant].run(views)[1]).astype(np.float16)
    cache.write_bytes(pickle.dumps(rows))
    return rows


def kept(reference: list[str], compressed: list[str], rule: str) -> bool:
    return compressed[0] == reference[0] if rule == "top1" else reference[0] in compressed


def backend_hits(rows: list[dict], rule: str) -> np.ndarray:
    """(photo, rung) -> whether the backend's answer on the rung keeps its answer on the reference."""
    return np.array([[kept(r["names"][-1], names, rule) for names in r["names"][:-1]] for r in rows])


def surrogate_hits(rows: list[dict], rule: str) -> tuple[np.ndarray, np.ndarray]:
    """The same question put to the surrogate (its top-5 as the label list), and its confidence: the probability
    it gives its own reference top-1 class on each rung."""
    hit, confidence = [], []
    for r in rows:
        probs = r["lite1"].astype(np.float32)
        top5 = np.argsort(-probs, axis=1)[:, :5]
        reference = int(probs[-1].argmax())
        hit.append([(top5[v, 0] == reference) if rule == "top1" else (reference in top5[v])
                    for v in range(1, len(ACTIONS))])
        confidence.append(probs[1:len(ACTIONS), reference])
    return np.array(hit), np.array(confidence)


def cheapest_sure(sure: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Per photo, the cheapest rung marked sure, or -1 (send the reference)."""
    choice = np.where(sure, size, np.inf).argmin(1)
    return np.where(sure.any(1), choice, -1)


def score(choice: np.ndarray, hit: np.ndarray, sent: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(bytes over reference bytes, accuracy) of sending each photo's chosen rung (-1: the reference)."""
    rows = np.arange(len(choice))
    bytes_sent = np.where(choice >= 0, sent[rows, choice], reference)
    return float(bytes_sent.sum() / reference.sum()), float(np.where(choice >= 0, hit[rows, choice], True).mean())


def best_at(target: float, points: list[tuple[float, float]]) -> dict | None:
    """The cheapest (bytes, accuracy) point that meets the target."""
    met = [p for p in points if p[1] >= target]
    if not met:
        return None
    cheapest = min(met)
    return {"bytes_vs_reference": round(cheapest[0], 4), "accuracy": round(cheapest[1], 4)}


def logistic_policy(x: np.ndarray, hit: np.ndarray, sent: np.ndarray, reference: np.ndarray, train: np.ndarray,
                    test: np.ndarray, target: float) -> dict | None:
    """Per-rung logistic hit probabilities (x: photos x features, or photos x rungs x features), swept to target."""
    if x.ndim == 2:
        probability = hit_probabilities(x, hit, train, test, l2=3.0, steps=25)
    else:
        probability = np.column_stack([hit_probabilities(x[:, r], hit[:, [r]], train, test, l2=3.0, steps=25)[:, 0]
                                       for r in range(x.shape[1])])
    ratio = sent[test] / reference[test, None]
    return best_at(target, [score(cheapest_sure(probability >= t, ratio), hit[test], sent[test], reference[test])
                            for t in THRESHOLDS])


def numbers(probs: np.ndarray, views: list[int]) -> list[float]:
    """The probe's surrogate numbers for the photo (row 0) and the given rungs (0-based over the ladder)."""
    return surrogate_numbers(probs[[0, *(v + 1 for v in views)]])


def fewer_photos(x: np.ndarray, hit: np.ndarray, sent: np.ndarray, reference: np.ndarray, fit: np.ndarray,
                 test: np.ndarray, target: float, draws: int = 4) -> dict:
    """Mean held-out bytes at the target when the policy is fitted on fewer of the `fit` photos (random draws)."""
    rng = np.random.default_rng(0)
    curve = {}
    for count in (c for c in (100, 200, 300, 400) if c < fit.sum()):  # a small --images folder skips the rest
        points = []
        for _ in range(draws):
            subset = np.zeros(len(fit), bool)
            subset[rng.choice(np.flatnonzero(fit), count, replace=False)] = True
            best = logistic_policy(x, hit, sent, reference, subset, test, target)
            points.append(best["bytes_vs_reference"] if best else np.nan)
        curve[str(count)] = round(float(np.nanmean(points)), 4)
    return curve


def analyze(rows: list[dict]) -> dict:
    odd = np.arange(len(rows)) % 2 == 1
    even = ~odd
    sent = np.array([r["bytes"][:-1] for r in rows], float)
    reference = np.array([r["bytes"][-1] for r in rows], float)
    ratio = sent / reference[:, None]
    probs = [r["lite1"].astype(np.float32) for r in rows]
    rungs = range(len(RES_LADDER))
    shipped = np.array([numbers(p, SHIPPED_VIEWS) for p in probs])
    own = np.array([[[*numbers(p, [rung])[:4], *shipped[i], ratio[i, rung]] for rung in rungs]
                    for i, p in enumerate(probs)])
    eight = np.array([numbers(p, EIGHT_VIEWS) for p in probs])
    other = {variant: [r[variant].astype(np.float32) for r in rows] for variant in ("lite0", "lite2")}
    other_shipped = {v: np.array([surrogate_numbers(p[:len(SHIPPED_VIEWS) + 1]) for p in other[v]]) for v in other}
    other_eight = {v: np.array([surrogate_numbers(p) for p in other[v]]) for v in other}
    report = {}
    for rule, target in TARGETS.items():
        hit = backend_hits(rows, rule)
        s_hit, confidence = surrogate_hits(rows, rule)
        oracle = np.where(hit, sent, np.inf).min(1)
        oracle = np.where(np.isfinite(oracle), oracle, reference)
        fixed = [score(np.full(odd.sum(), rung), hit[odd], sent[odd], reference[odd]) for rung in rungs]
        stand_in = [score(cheapest_sure(s_hit[odd] & (confidence[odd] >= t), ratio[odd]), hit[odd], sent[odd],
                          reference[odd]) for t in THRESHOLDS]
        policy = partial(logistic_policy, hit=hit, sent=sent, reference=reference, train=even, test=odd, target=target)
        report[rule] = {
            "target": target,
            "oracle": round(float(oracle[odd].sum() / reference[odd].sum()), 4),
            "best_fixed_rung": best_at(target, fixed),
            "surrogate_agrees_with_backend": round(float((s_hit == hit)[odd].mean()), 4),
            "surrogate_agrees_at_jpeg:5@128": round(float((s_hit == hit)[odd][:, -8].mean()), 4),
            "surrogate_stands_in_for_backend": best_at(target, stand_in),
            "logistic_policy": {
                "lite1: shipped probe (photo + full-size q=5..25), sizes": policy(np.column_stack([shipped, ratio])),
                "lite1: shipped probe + each rung's own view, per rung (28 passes)": policy(own),
                "lite1: shipped probe + q=5, 15 at each cap (9 passes), sizes": policy(np.column_stack([eight, ratio])),
                "lite0: shipped probe, sizes": policy(np.column_stack([other_shipped["lite0"], ratio])),
                "lite0: + q=5, 15 at each cap, sizes": policy(np.column_stack([other_eight["lite0"], ratio])),
                "lite0 and lite1: shipped probe, sizes": policy(np.column_stack([other_shipped["lite0"], shipped,
                                                                                 ratio])),
                "lite2, the backend's own model (a bound): shipped probe, sizes": policy(
                    np.column_stack([other_shipped["lite2"], ratio])),
                "lite2, the backend's own model (a bound): + q=5, 15 at each cap, sizes": policy(
                    np.column_stack([other_eight["lite2"], ratio])),
            },
            "shipped_probe_fitted_on_fewer_photos": fewer_photos(np.column_stack([shipped, ratio]), hit, sent,
                                                                 reference, even, odd, target),
        }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "ceiling_study.json")
    parser.add_argument("--cache", type=Path, required=True, help="pickle of the collected answers (reused)")
    parser.add_argument("--images", type=Path, default=IMAGENET_SAMPLE)
    args = parser.parse_args(argv)
    host = machine()
    files = list_images(args.images)
    collected = collect(files, args.cache)
    report = analyze([collected[f.name] for f in files])
    write_json({"benchmark": "ceiling_study", "photos": len(files), "fit": "even files", "scored": "odd files",
                "ladder": RES_LADDER.spec, "backend": "local:lite2", "surrogate": "lite1",
                "reference": REFERENCE_ACTION.label, "results": report, "machine": host}, args.out)
    for rule, result in report.items():
        print(rule, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
