"""`adacompress compress`: write each image at the quality a policy picks for it, with no backend call."""

from __future__ import annotations

import argparse
from pathlib import Path

from adacompress.agents.policies import policy_from_spec
from adacompress.codec import DEFAULT_LADDER, REFERENCE_ACTION, encode
from adacompress.images import IMAGE_SUFFIXES, list_images, open_image

_EXTENSIONS = {"jpeg": ".jpg", "webp": ".webp", "avif": ".avif"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, help="image files or folders")
    parser.add_argument("--policy", default="fixed:15", help="fixed:Q, pretrained:NAME or an agent .zip")
    parser.add_argument("--out", type=Path, required=True, help="output folder")


def run(args: argparse.Namespace) -> int:
    policy = policy_from_spec(args.policy, DEFAULT_LADDER)
    files = [f for path in args.inputs for f in (list_images(path) if path.is_dir() else [path])]
    args.out.mkdir(parents=True, exist_ok=True)
    total = reference_total = 0
    for path in files:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            print(f"skip {path}: not an image file")
            continue
        image = open_image(path)
        action = policy.action_for(image)
        encoded = encode(image, action)
        reference = encode(image, REFERENCE_ACTION).info.bytes
        (args.out / f"{path.stem}{_EXTENSIONS[action.codec]}").write_bytes(encoded.data)
        total, reference_total = total + encoded.info.bytes, reference_total + reference
        ratio = encoded.info.bytes / reference
        print(f"{path.name}: {action.label}, {encoded.info.bytes:,} bytes ({ratio:.2f} of q=75)")
    if reference_total:
        print(f"{len(files)} images: {total:,} bytes, {total / reference_total:.2f} of the q=75 bytes")
    return 0
