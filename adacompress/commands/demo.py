"""`adacompress demo`: the main job on an embedded default, no Redis or cloud account needed.

Starts the upload proxy on loopback (the local backend, the shipped agent, the embedded store), sends
photos through it with a stock boto3 Rekognition client (only `endpoint_url` points at the proxy), and
prints what each upload cost and whether it kept the answer the q=75 reference gets; then stops the
proxy. The comparison against every fixed quality is `adacompress eval`.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

from adacompress.cloud_backends.base import Label, Recognition
from adacompress.codec import REFERENCE_ACTION, encode
from adacompress.commands._common import load_images
from adacompress.demo_images import demo_image_set
from adacompress.images import ImageSet
from adacompress.scoring import Scoring
from adacompress.service.assemble import ServeOptions, assemble
from adacompress.service.store import EmbeddedStore

DEMO_AGENT = "pretrained:local-lite2"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", type=Path, help="image folder (default: photos bundled with scikit-image)")
    parser.add_argument("--backend", default="local", help="the proxy's upstream backend (default: local)")
    parser.add_argument("--agent", default=DEMO_AGENT, help=f"policy the proxy serves (default: {DEMO_AGENT})")
    parser.add_argument("--workers", type=int, default=0,
                        help="decision worker processes (default 0: decide in the proxy's process)")


def run(args: argparse.Namespace) -> int:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    from adacompress.service.proxy_runner import serving

    images = load_images(args.images, "all") if args.images else demo_image_set()
    uploads = [_jpeg(images, i) for i in range(len(images))]
    service = assemble(ServeOptions(backend=args.backend, policy=args.agent, workers=args.workers),
                       store=EmbeddedStore("demo:"))
    judge, scoring = service.backend, Scoring()  # the reference answers come from the same upstream
    print(f"adacompress demo: {len(images)} photos through the proxy (backend {args.backend}, policy "
          f"{args.agent}, embedded store: no Redis or cloud account needed)")
    sent_total = reference_total = kept = estimates = answered = 0
    started = time.perf_counter()
    with serving(service) as url:
        client = boto3.client("rekognition", endpoint_url=url, region_name="us-east-1",
                              aws_access_key_id="adacompress", aws_secret_access_key="demo",
                              config=Config(retries={"mode": "standard", "total_max_attempts": 2}))
        print(f"proxy at {url}; each photo is sent with boto3 detect_labels(Image={{'Bytes': ...}})\n")
        print(f"{'photo':<28} {'sent':>9} {'q=75':>9}  {'action':<9} {'answer':<24} kept")
        for i, data in enumerate(uploads):
            try:
                reply = client.detect_labels(Image={"Bytes": data}, MinConfidence=0)
            except ClientError as exc:  # refused as Rekognition refuses it (e.g. under 80 px): nothing was sent
                error = exc.response["Error"]
                print(f"{images.name(i)[:28]:<28} refused: {error['Code']}: {error.get('Message', '')}")
                continue
            answered += 1
            headers = reply["ResponseMetadata"]["HTTPHeaders"]
            sent, reference = int(headers["x-adacompress-bytes-sent"]), int(headers["x-adacompress-reference-bytes"])
            answer = Recognition(tuple(Label(label["Name"], label["Confidence"] / 100) for label in reply["Labels"]),
                                 {}, 0.0, sent)
            truth = judge.recognize(encode(images.load(i), REFERENCE_ACTION).data)
            hit = scoring.hit(truth, answer)
            sent_total, reference_total, kept = sent_total + sent, reference_total + reference, kept + hit
            estimates += int(headers["x-adacompress-estimated"])
            print(f"{images.name(i)[:28]:<28} {sent:>9,} {reference:>9,}  {headers['x-adacompress-action']:<9} "
                  f"{(answer.top1 or '-')[:24]:<24} {'yes' if hit else 'NO'}")
        state = service.daemon.state
    if not answered:
        print("\nNo photo was answered.")
        return 1
    saved = 1 - sent_total / reference_total
    print(f"\n{answered} uploads answered in {time.perf_counter() - started:.1f} s: sent {sent_total:,} bytes where "
          f"the q=75 reference is {reference_total:,} ({saved:.0%} saved); {kept}/{answered} answers kept "
          f"({kept / answered:.0%}).")
    print(f"The daemon estimated {estimates} of them (uploading the reference too and serving its answer); "
          f"its accuracy dial is at {state.size_weight:.3f} (the agent's own: {service.daemon.policy.size_weight}). "
          "Proxy stopped." if state.size_weight is not None else "Proxy stopped.")
    return 0


def _jpeg(images: ImageSet, index: int) -> bytes:
    """The upload a client would send: the photo as a q=90 JPEG, as a camera or browser would save it."""
    buffer = io.BytesIO()
    images.load(index).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()
