"""Which filter shrinks an upload under a size cap: what each keeps of the backend's answer, what it costs.

For a few capped actions, on held-out sample photos (the odd files): the local backend's answer kept
(in-labels and top-1 against the full-size q=75 reference) and the bytes sent, for LANCZOS with a
box pre-reduction (`codec.resize_for`, what adacompress ships), plain LANCZOS, BILINEAR and box; and
the time each filter takes on a 0.2 MP photo and on a 12 MP mosaic.

    python bench/bench_resize.py --out bench/results/resize.json
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from _common import IMAGENET_SAMPLE, REPO_ROOT, decoded, machine, mosaic, percentiles, time_each, write_json
from PIL import Image

from adacompress.cloud_backends.local import LocalBackend
from adacompress.codec import REDUCING_GAP, REFERENCE_ACTION, Action, encode
from adacompress.images import list_images
from adacompress.scoring import HitRule, hit

ACTIONS = (Action("jpeg", 15, 192), Action("jpeg", 35, 192), Action("jpeg", 15, 128), Action("jpeg", 35, 128))
FILTERS = {
    "lanczos+reduce (shipped)": lambda im, size: im.resize(size, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP),
    "lanczos": lambda im, size: im.resize(size, Image.Resampling.LANCZOS),
    "bilinear": lambda im, size: im.resize(size, Image.Resampling.BILINEAR),
    "box": lambda im, size: im.resize(size, Image.Resampling.BOX),
}


def answers_kept(photos: list[Image.Image], backend: LocalBackend) -> dict:
    encoded_references = [encode(p, REFERENCE_ACTION) for p in photos]
    references = [backend.recognize(e.data) for e in encoded_references]
    reference_bytes = [e.info.bytes for e in encoded_references]
    rows = {}
    for name, shrink in FILTERS.items():
        for action in ACTIONS:
            kept = {rule: [] for rule in HitRule}
            sizes = []
            for photo, reference, ref_bytes in zip(photos, references, reference_bytes, strict=True):
                encoded = encode(shrink(photo, action.target_size(photo.size)), action)
                answer = backend.recognize(encoded.data)
                for rule in HitRule:
                    kept[rule].append(hit(reference, answer, rule))
                sizes.append(encoded.info.bytes / ref_bytes)
            rows.setdefault(name, {})[action.label] = {
                "in_labels": round(float(np.mean(kept[HitRule.IN_LABELS])), 4),
                "top1": round(float(np.mean(kept[HitRule.TOP1])), 4),
                "bytes_vs_reference": round(float(np.mean(sizes)), 4)}
            print(name, action.label, rows[name][action.label], flush=True)
    return rows


def timings(photos: list[Image.Image], warmup: int) -> dict:
    large = [Image.open(io.BytesIO(mosaic(photos, 4000, 3000, seed))).convert("RGB") for seed in range(4)]
    out, cap = {}, Action("jpeg", 25, 192)
    for label, images in (("0.2MP", photos[:50]), ("12MP", large)):
        out[label] = {name: percentiles(time_each(images, lambda im, f=shrink: f(im, cap.target_size(im.size)),
                                                  warmup)) for name, shrink in FILTERS.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "resize.json")
    parser.add_argument("--images", type=Path, default=IMAGENET_SAMPLE)
    parser.add_argument("--count", type=int, default=200, help="held-out photos scored")
    args = parser.parse_args(argv)
    host = machine()
    photos = decoded(list_images(args.images)[1::2][: args.count])
    rows = answers_kept(photos, LocalBackend())
    write_json({"benchmark": "resize", "photos": len(photos), "subset": "odd", "backend": "local:lite2",
                "reference": REFERENCE_ACTION.label, "kept_and_bytes": rows, "resize_ms": timings(photos, 2),
                "machine": host}, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
