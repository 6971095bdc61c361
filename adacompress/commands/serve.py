"""`adacompress serve`: the upload proxy in front of a cloud vision backend, through the daemon."""

from __future__ import annotations

import argparse
import logging
import os

from adacompress.config import secret
from adacompress.service.assemble import ServeOptions, assemble
from adacompress.service.proxy import ProxyConfig, create_app
from adacompress.service.rules import RULE_SETS

log = logging.getLogger(__name__)

NOTES = """A client then sends: curl --data-binary @photo.jpg http://127.0.0.1:8080/v1/recognize
Clients may send `Authorization: Bearer $ADACOMPRESS_API_KEY` when that variable is set (then required).
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = NOTES
    defaults, limits = ServeOptions(), ProxyConfig()
    parser.add_argument("--backend", default=defaults.backend, help="local, local:lite0, rekognition, baidu, ...")
    parser.add_argument("--policy", default=defaults.policy,
                        help="pretrained:NAME, an agent .zip, or fixed:Q (used when the registry has no current "
                             "version; otherwise the registry's wins)")
    parser.add_argument("--redis", metavar="URL", help="share transitions, policies and limits (default "
                        "ADACOMPRESS_REDIS_URL; without one, everything stays in this process)")
    parser.add_argument("--prefix", help="Redis key prefix (default ADACOMPRESS_REDIS_PREFIX, else adacompress:)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback only)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="decision worker processes (default: one per core; 0 decides in this process)")
    parser.add_argument("--onnx-threads", type=int, default=1, help="onnxruntime threads per worker (default 1)")
    parser.add_argument("--rules", choices=RULE_SETS, default=defaults.rules,
                        help="adacompress (holds --target-accuracy) or paper (AdaCompress's own rules)")
    parser.add_argument("--target-accuracy", type=float, metavar="SHARE",
                        help="share of answers that must keep the reference's answer (default 0.98)")
    parser.add_argument("--learn", action="store_true",
                        help="retrain in this process (one machine); else run `adacompress learn` beside")
    parser.add_argument("--max-in-flight", type=int, default=limits.max_in_flight,
                        help=f"requests admitted at once; more get 503 + Retry-After (default {limits.max_in_flight})")
    parser.add_argument("--timeout-s", type=float, default=limits.request_timeout_s,
                        help=f"per-request deadline (default {limits.request_timeout_s:.0f})")
    parser.add_argument("--no-cache", action="store_true",
                        help="ask the provider every time, even for bytes it answered before (benchmarks)")
    parser.add_argument("--passthrough", action="store_true",
                        help="forward uploads as sent, no decision and no daemon: the baseline benchmarks compare")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from adacompress.config import settings
    from adacompress.service import dropin

    options = ServeOptions(backend=args.backend, policy=args.policy, redis_url=args.redis, prefix=args.prefix,
                           workers=args.workers, onnx_threads=args.onnx_threads, rules=args.rules,
                           target_accuracy=args.target_accuracy, learn=args.learn, cache=not args.no_cache)
    config = ProxyConfig(max_upload_bytes=settings().max_upload_bytes, max_in_flight=args.max_in_flight,
                         request_timeout_s=args.timeout_s, api_key=secret("ADACOMPRESS_API_KEY"),
                         passthrough=args.passthrough)
    service = assemble(options, config)
    service.pool.warm_up(service.daemon.policy, _sample_jpeg())  # onnxruntime sessions built before the first client
    app = create_app(service, [dropin.mount])
    print(f"adacompress serve: {args.backend} behind http://{args.host}:{args.port} "
          f"(policy {service.daemon.policy.version[:12]}, {args.workers} decision workers)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=30)
    return 0


def _sample_jpeg() -> bytes:
    """A small photo-like JPEG for warming the decision workers up."""
    import io

    from adacompress.demo_images import demo_photos

    buffer = io.BytesIO()
    demo_photos()[0].resize((320, 240)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()
