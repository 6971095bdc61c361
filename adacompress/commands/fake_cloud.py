"""`adacompress fake-cloud`: run one provider's fake API on loopback until Ctrl-C, SIGINT or SIGTERM.

It prints the endpoint and the environment variables that point the real client at it (the
fake's own throwaway credentials included), so `train`, `eval` or any boto3/httpx code can be
tried end to end without an account or a bill.
"""

from __future__ import annotations

import argparse
import errno
import shlex
import signal
import threading

from adacompress.cloud_backends.fakes import FAKES, FakeServer, make_fake
from adacompress.errors import AdaCompressError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class CannotListen(AdaCompressError):
    code = "cannot_listen"


class PortInUse(CannotListen):
    code = "port_in_use"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider", required=True, choices=sorted(FAKES), help="which API to fake")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--variant", default="lite0", help="local model computing the labels (default: lite0)")
    parser.add_argument("--qps-limit", type=float, help="throttle calls beyond this rate, like the real quota")
    parser.add_argument("--daily-limit", type=int, help="answer the quota error after this many calls")
    parser.add_argument("--delay-s", type=float, default=0.0, help="wait this long before each answer")
    parser.add_argument("--uplink-mbit-s", type=float,
                        help="read each request no faster than this, like a client's uplink (e.g. 20)")


def listen(args: argparse.Namespace) -> FakeServer:
    """The fake, bound to `--host:--port`, or one clear error when the address is taken or not ours."""
    try:
        return make_fake(args.provider, host=args.host, port=args.port, variant=args.variant)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(f"port {args.port} on {args.host} is already in use; pick another --port, "
                               "or --port 0 for any free one") from None
        raise CannotListen(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    fake = listen(args)
    fake.faults.qps_limit = args.qps_limit
    fake.faults.daily_limit = args.daily_limit
    fake.faults.delay_s = args.delay_s
    fake.faults.uplink_bytes_per_s = args.uplink_mbit_s * 1e6 / 8 if args.uplink_mbit_s else None
    stop = threading.Event()
    # Installed explicitly: a shell starts a background job with SIGINT ignored, and SIGTERM would kill
    # the process without the stop line.
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    try:
        with fake:
            print(f"adacompress fake-cloud: fake {args.provider} API listening on {fake.endpoint}")
            print("Point a client at it with (fake credentials, accepted only by this server):")
            for name, value in fake.env().items():
                print(f"  export {name}={shlex.quote(value)}")
            print("Press Ctrl-C to stop.", flush=True)
            stop.wait()
            print(f"\nadacompress fake-cloud: stopped after {fake.calls} recognition calls", flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
