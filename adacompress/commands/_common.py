"""Arguments and setup shared by the commands that run policies over an image folder."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from adacompress.cloud_backends.acceptance import check_ladder
from adacompress.cloud_backends.base import VisionBackend
from adacompress.cloud_backends.cost import CostReport
from adacompress.cloud_backends.registry import create_backend
from adacompress.codec import DEFAULT_LADDER, Action, Ladder, LadderError
from adacompress.errors import AdaCompressError
from adacompress.evaluation import EvalResult, skipped_images
from adacompress.images import DecodeLimits, ImageSet
from adacompress.scoring import HitRule, Scoring

SUBSETS = ("all", "even", "odd")


class NoUsableImage(AdaCompressError):
    code = "no_usable_image"


def add_data_args(parser: argparse.ArgumentParser, images_required: bool = True) -> None:
    parser.add_argument("--backend", default="local", help="backend spec: local, local:lite0, rekognition, ...")
    parser.add_argument("--images", type=Path, required=images_required, help="image folder (recursive)")
    parser.add_argument("--subset", choices=SUBSETS, default="all",
                        help="files by position in name order: even-indexed (training), odd (held out) or all")
    parser.add_argument("--ladder", default=DEFAULT_LADDER.spec,
                        help="actions, e.g. 'jpeg:5,15,25' or 'jpeg:5,15;jpeg:10,25@192' (@N: short side <= N px)")
    parser.add_argument("--rule", choices=[r.value for r in HitRule], default=HitRule.IN_LABELS.value,
                        help="hit rule: in-labels (the paper's) or strict top1")
    parser.add_argument("--min-score", type=float, default=0.0, help="ignore compressed labels below this score")
    parser.add_argument("--alpha", type=float, default=1.0, help="reward weight of a hit")
    parser.add_argument("--beta", type=float, default=1.0, help="reward weight of bytes / reference bytes")
    parser.add_argument("--reduced-decode-px", type=int, metavar="PX",
                        help="decode JPEGs at 1/2 to 1/8 scale (nearly free) keeping the short side >= PX: much "
                             "less memory and time on big photos, but the bytes and answers are then the smaller "
                             "image's (default: full size)")


def add_report_args(parser: argparse.ArgumentParser) -> None:
    """Options of the commands that score policies over a folder and report what it cost (eval, bench)."""
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first bad image, naming it (default: skip it, report it, go on)")
    parser.add_argument("--price-per-1k-usd", type=float, metavar="USD",
                        help="price per 1,000 billable calls for the spend estimate (default: the provider's "
                             "list price, see docs/backends.md)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (none is shown off a terminal)")


def load_images(folder: Path, subset: str, reduced_decode_px: int | None = None) -> ImageSet:
    """The folder's images under the `ADACOMPRESS_MAX_*` limits, optionally decoded reduced."""
    images = ImageSet.from_folder(folder, limits=DecodeLimits.from_settings(), draft_short_side_px=reduced_decode_px)
    if subset == "all":
        return images
    start = 0 if subset == "even" else 1
    return images.subset(list(range(start, len(images), 2)))


def scoring_from_args(args: argparse.Namespace) -> Scoring:
    return Scoring(HitRule(args.rule), args.min_score, args.alpha, args.beta)


def ladder_from_args(args: argparse.Namespace) -> Ladder:
    return Ladder.parse(args.ladder)


def backend_from_args(args: argparse.Namespace, actions: Ladder | Iterable[Action]) -> VisionBackend:
    """The `--backend`, refused (`LadderError`) before any upload when it cannot take one of `actions`.

    `actions` is everything the command will upload: its ladder, and the reference action beside it.
    """
    try:
        backend = create_backend(args.backend)
    except KeyError as exc:
        raise AdaCompressError(str(exc)) from exc
    try:
        check_ladder(actions, backend)
    except LadderError:
        backend.close()
        raise
    return backend


@contextmanager
def progress(count: int, enabled: bool, what: str) -> Iterator[Iterable[int]]:
    """`range(count)`, drawn as a progress bar on stderr (the kind `train` shows) when stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield range(count)
        return
    from rich.console import Console
    from tqdm import TqdmExperimentalWarning
    from tqdm.rich import tqdm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmExperimentalWarning)
        bar = tqdm(range(count), desc=what, unit="image", options={"console": Console(stderr=True)})
    with bar:
        yield bar


def print_skips(results: list[EvalResult]) -> None:
    for entry in skipped_images(results):
        print(f"skip {entry['image']}: [{entry['code']}] {entry['message']}")


def check_usable(results: list[EvalResult], images: ImageSet, folder: Path) -> None:
    """Fail, in one line, when every image was skipped: a run over no image measures nothing."""
    if all(result.images == 0 for result in results):
        raise NoUsableImage(f"no usable image under {folder}: {len(images)} skipped, 0 scored "
                            "(see the skip lines above)")


def cost_line(cost: CostReport) -> str:
    return (f"cost on {cost.backend}: {cost.calls:,} calls, {cost.cache_hits:,} cache hits, {cost.bytes_sent:,} "
            f"bytes sent, estimated ${cost.estimated_usd:.4f} (${cost.price_per_1k_usd:g} per 1,000 billable calls)")
