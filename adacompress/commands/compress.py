"""`adacompress compress`: write each image at the quality a policy picks for it, with no backend call."""

from __future__ import annotations

import argparse
from pathlib import Path

from adacompress.agents.policies import policy_from_spec
from adacompress.cloud_backends.acceptance import check_actions
from adacompress.codec import DEFAULT_LADDER
from adacompress.errors import BadImage
from adacompress.images import IMAGE_SUFFIXES, list_images

_EXTENSIONS = {"jpeg": ".jpg", "webp": ".webp", "avif": ".avif"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, help="image files or folders")
    parser.add_argument("--policy", default="fixed:15", help="fixed:Q, pretrained:NAME or an agent .zip")
    parser.add_argument("--out", type=Path, required=True, help="output folder")


def run(args: argparse.Namespace) -> int:
    policy = policy_from_spec(args.policy, DEFAULT_LADDER)
    check_actions([*policy.ladder.actions, policy.reference], None, str(args.out), owner=f"policy {args.policy}")
    files = [f for path in args.inputs for f in (list_images(path) if path.is_dir() else [path])]
    args.out.mkdir(parents=True, exist_ok=True)
    total = reference_total = 0
    for path in files:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            print(f"skip {path}: not an image file")
            continue
        try:
            decision = policy.decide(path.read_bytes())
        except BadImage as exc:
            print(f"skip {path}: [{exc.code}] {exc}")
            continue
        (args.out / f"{path.stem}{_EXTENSIONS[decision.action.codec]}").write_bytes(decision.data)
        total, reference_total = total + decision.bytes, reference_total + decision.reference_bytes
        ratio = decision.bytes / decision.reference_bytes
        print(f"{path.name}: {decision.action.label}, {decision.bytes:,} bytes (about {ratio:.2f} of q=75)")
    if reference_total:
        print(f"{len(files)} images: {total:,} bytes, about {total / reference_total:.2f} of the q=75 bytes "
              "(q=75 sizes estimated from reduced copies)")
    return 0
