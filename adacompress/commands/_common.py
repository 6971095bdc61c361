"""Arguments and setup shared by the commands that run policies over an image folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from adacompress.cloud_backends.base import VisionBackend
from adacompress.cloud_backends.registry import create_backend
from adacompress.codec import DEFAULT_LADDER, Ladder
from adacompress.errors import AdaCompressError
from adacompress.images import ImageSet
from adacompress.scoring import HitRule, Scoring

SUBSETS = ("all", "even", "odd")


def add_data_args(parser: argparse.ArgumentParser, images_required: bool = True) -> None:
    parser.add_argument("--backend", default="local", help="backend spec: local, local:lite0, rekognition, ...")
    parser.add_argument("--images", type=Path, required=images_required, help="image folder (recursive)")
    parser.add_argument("--subset", choices=SUBSETS, default="all",
                        help="files by position in name order: even-indexed (training), odd (held out) or all")
    parser.add_argument("--ladder", default=DEFAULT_LADDER.spec, help="actions, e.g. 'jpeg:5,15,25'")
    parser.add_argument("--rule", choices=[r.value for r in HitRule], default=HitRule.IN_LABELS.value,
                        help="hit rule: in-labels (the paper's) or strict top1")
    parser.add_argument("--min-score", type=float, default=0.0, help="ignore compressed labels below this score")
    parser.add_argument("--alpha", type=float, default=1.0, help="reward weight of a hit")
    parser.add_argument("--beta", type=float, default=1.0, help="reward weight of bytes / reference bytes")


def load_images(folder: Path, subset: str) -> ImageSet:
    images = ImageSet.from_folder(folder)
    if subset == "all":
        return images
    start = 0 if subset == "even" else 1
    return images.subset(list(range(start, len(images), 2)))


def scoring_from_args(args: argparse.Namespace) -> Scoring:
    return Scoring(HitRule(args.rule), args.min_score, args.alpha, args.beta)


def ladder_from_args(args: argparse.Namespace) -> Ladder:
    return Ladder.parse(args.ladder)


def backend_from_args(args: argparse.Namespace) -> VisionBackend:
    try:
        return create_backend(args.backend)
    except KeyError as exc:
        raise AdaCompressError(str(exc)) from exc
