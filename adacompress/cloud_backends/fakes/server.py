"""The machinery every fake provider shares: a loopback HTTP server, fault switches, local labels.

A fake is a real `ThreadingHTTPServer` on a background thread, so clients go through their
real HTTP stack (httpx, botocore, retries, timeouts). Labels come from the local ImageNet
classifier on the uploaded bytes, so they degrade with JPEG quality as a real API's do.
Subclasses check credentials their provider's way; requests and replies are the provider's
wire format from `adacompress.cloud_backends.wire`, which the upload proxy speaks too.
"""

from __future__ import annotations

import collections
import contextlib
import email.utils
import logging
import socket
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from adacompress.cloud_backends.base import Label
from adacompress.cloud_backends.limits import ImageLimits
from adacompress.cloud_backends.local import LocalBackend
from adacompress.cloud_backends.redact import redact
from adacompress.cloud_backends.wire.common import (
    Answer,
    ErrorKind,
    RecognitionRequest,
    WireError,
    WireFormat,
    WireReply,
    WireRequest,
)
from adacompress.errors import BadImage

log = logging.getLogger(__name__)
_UPLINK_CHUNK_BYTES = 16 * 1024
"""Granularity of `Faults.uplink_bytes_per_s`: 6.5 ms of a 2.5 MB/s uplink."""


@dataclass
class Faults:
    """Switches a test flips to make the fake misbehave like the real API does."""

    throttle_next: int = 0
    """Answer the next N recognition calls with the provider's throttling error."""
    fail_next: int = 0
    """Answer the next N recognition calls with the provider's internal (5xx-class) error."""
    quota_exhausted: bool = False
    """Answer every recognition call with the provider's quota error."""
    daily_limit: int | None = None
    """Answer calls after this many successful ones with the quota error."""
    delay_s: float = 0.0
    """Wait this long before answering a recognition call."""
    qps_limit: float | None = None
    """Throttle calls beyond this many per second (sliding one-second window)."""
    bad_credentials: bool = False
    """Treat the configured credentials as revoked."""
    retry_after_s: float | None = None
    """Send this Retry-After (seconds) with throttling errors."""
    retry_after_http_date: bool = False
    """Send Retry-After as an HTTP date (`Wed, 21 Oct 2026 07:28:00 GMT`), the other form RFC 9110 allows."""
    drip_s: float = 0.0
    """Send each recognition answer (status line, headers, body) one byte at a time, this long apart."""
    uplink_bytes_per_s: float | None = None
    """Read each request body no faster than this, as a slow client uplink sends it (20 Mbit/s = 2.5e6)."""
    foreign_reply: tuple[int, str] | None = None
    """Answer every request on any path with this HTTP status and JSON text, as a wrong endpoint or a
    proxy in the way would (e.g. `(404, '{"error": "not found"}')`)."""


class FakeLabeler:
    """Top-k ImageNet labels of the uploaded bytes, with confidences calibrated like a cloud API's.

    Softmax probabilities over 1000 classes are small (0.02-0.9); cloud APIs report 50-99 for
    their top labels. `p ** confidence_power` (0.2 by default) maps 0.03 to 0.5 and 0.5 to 0.87.
    """

    def __init__(self, variant: str = "lite0", top_k: int = 10, confidence_power: float = 0.2) -> None:
        self.backend = LocalBackend(variant, max_labels=top_k)
        self.confidence_power = confidence_power

    def labels(self, image_bytes: bytes) -> list[tuple[str, float]]:
        """(ImageNet name, confidence 0..1), best first; raises `BadImage` if the bytes do not decode."""
        answer = self.backend.recognize(image_bytes)
        return [(label.name, label.score ** self.confidence_power) for label in answer.labels]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AdaCompressFake/1.0"
    timeout = 30

    def setup(self) -> None:
        super().setup()
        fake: FakeServer = self.server.fake  # type: ignore[attr-defined]
        with fake._lock:
            fake._connections.add(self.connection)

    def finish(self) -> None:
        fake: FakeServer = self.server.fake  # type: ignore[attr-defined]
        with fake._lock:
            fake._connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        fake: FakeServer = self.server.fake  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self._read_body(length, fake.faults.uplink_bytes_per_s, fake._stopping)
        url = urlsplit(self.path)
        request = WireRequest(self.command, url.path, dict(parse_qsl(url.query, keep_blank_values=True)),
                              {k.lower(): v for k, v in self.headers.items()}, body)
        with fake._lock:
            fake.requests += 1
            fake.last_request = request
        fake._local.drip_s = 0.0
        foreign = fake.faults.foreign_reply
        try:
            reply = WireReply(foreign[0], foreign[1].encode()) if foreign else fake.handle(request)
        except WireError as exc:
            reply = exc.reply
        except Exception:
            log.exception("fake %s: handler failed on %s %s", fake.provider, self.command, url.path)
            reply = fake.internal_error()
        try:
            if fake._local.drip_s:
                self._drip(reply, fake._local.drip_s, fake._stopping)
                return
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (timeout); nothing to answer

    def _read_body(self, length: int, bytes_per_s: float | None, stopping: threading.Event) -> bytes:
        """The request body; with `bytes_per_s`, no faster than that, so the upload lasts length/rate seconds."""
        if not bytes_per_s:
            return self.rfile.read(length) if length else b""
        chunks, received, started = [], 0, time.monotonic()
        while received < length:
            chunk = self.rfile.read(min(_UPLINK_CHUNK_BYTES, length - received))
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
            if stopping.wait(max(0.0, started + received / bytes_per_s - time.monotonic())):
                break
        return b"".join(chunks)

    def _drip(self, reply: WireReply, interval_s: float, stopping: threading.Event) -> None:
        """Write the whole reply a byte at a time, as a stalled link or a hostile server would."""
        head = [f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('',))[0]}",
                f"Content-Type: {reply.content_type}", f"Content-Length: {len(reply.body)}",
                *(f"{name}: {value}" for name, value in reply.headers.items())]
        raw = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body
        self.close_connection = True
        for i in range(len(raw)):
            if stopping.wait(interval_s):
                return
            self.wfile.write(raw[i:i + 1])

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (BaseHTTPRequestHandler's name)
        log.debug("fake %s: %s", self.server.fake.provider, redact(format % args))  # type: ignore[attr-defined]


class FakeServer(ABC):
    """One provider's API on loopback; use as a context manager or `start()`/`stop()`."""

    provider: str = "fake"
    wire: WireFormat
    """The provider's wire format: parsing, answers and errors."""
    sends_retry_after: bool = True
    """Whether the provider's throttling errors carry `Retry-After` (`faults.retry_after_s`)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, variant: str = "lite0", top_k: int = 10,
                 limits: ImageLimits | None = None) -> None:
        self.faults = Faults()
        self.labeler = FakeLabeler(variant, top_k)
        self.limits = limits or self.wire.default_limits
        """What this fake accepts: the client's limits by default; stricter ones emulate a stricter page."""
        self.requests = 0
        """HTTP requests received on any path (token requests included)."""
        self.calls = 0
        """Recognition requests that passed the credential check, whatever their fate."""
        self.answered = 0
        """Recognition requests answered with labels."""
        self.arrivals: list[float] = []
        """`time.monotonic()` of each recognition request, in order of arrival."""
        self.last_request: WireRequest | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._connections: set[socket.socket] = set()
        self._arrivals: collections.deque[float] = collections.deque()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._httpd.fake = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @abstractmethod
    def env(self) -> dict[str, str]:
        """Environment variables that point this provider's client at the fake, credentials included."""

    @abstractmethod
    def handle(self, request: WireRequest) -> WireReply:
        """Answer one HTTP request in the provider's wire format (raising `WireError` answers its reply)."""

    def internal_error(self) -> WireReply:
        """The provider's reply to an internal failure."""
        return self.wire.error_reply(ErrorKind.UNAVAILABLE)

    def start(self) -> FakeServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-{self.provider}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop open keep-alive connections, as a restarted server would."""
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def begin_call(self) -> None:
        """Count a recognition call and apply the delay; raise `WireError` with the fault it meets, if any."""
        with self._lock:
            self.calls += 1
            self.arrivals.append(time.monotonic())
            delay = self.faults.delay_s
        self._local.drip_s = self.faults.drip_s
        if delay:
            self._stopping.wait(delay)
        kind = self._fault()
        if kind is ErrorKind.UNAVAILABLE:
            raise WireError(self.internal_error())
        if kind is not None:
            reply = self.wire.error_reply(kind)
            if kind in (ErrorKind.THROTTLED, ErrorKind.RATE_LIMITED) and self.sends_retry_after:
                reply = reply.with_headers(self.throttle_headers())
            raise WireError(reply)

    def _fault(self) -> ErrorKind | None:
        """The fault this call meets, checked in the order real APIs apply them: quota, throttling, failure."""
        with self._lock:
            faults, now = self.faults, time.monotonic()
            if faults.quota_exhausted or (faults.daily_limit is not None and self.answered >= faults.daily_limit):
                return ErrorKind.QUOTA_EXCEEDED
            if faults.throttle_next > 0:
                faults.throttle_next -= 1
                return ErrorKind.THROTTLED
            while self._arrivals and now - self._arrivals[0] >= 1.0:
                self._arrivals.popleft()
            if faults.qps_limit is not None and len(self._arrivals) >= faults.qps_limit:
                return ErrorKind.RATE_LIMITED
            self._arrivals.append(now)
            if faults.fail_next > 0:
                faults.fail_next -= 1
                return ErrorKind.UNAVAILABLE
        return None

    def recognize(self, request: WireRequest) -> WireReply:
        """Parse, label and answer a recognition call that passed the credential and fault checks."""
        items = self.wire.parse(request, self.limits)
        answers = [self._answer(item) if isinstance(item, RecognitionRequest) else item for item in items]
        return self.wire.reply(items, answers, **self._reply_options())

    def _answer(self, item: RecognitionRequest) -> Answer:
        """The labels of one image that passed every check, in the provider's naming; counts it as answered."""
        try:
            found = self.labeler.labels(item.image)
        except BadImage as exc:
            return exc
        with self._lock:
            self.answered += 1
        return [Label(self._name(name), score) for name, score in found]

    def _name(self, imagenet_name: str) -> str:
        """How the provider writes an ImageNet class name."""
        return imagenet_name

    def _reply_options(self) -> dict[str, Any]:
        """Keyword options of the provider's `reply` (model version, Baidu's root, ...)."""
        return {}

    def throttle_headers(self) -> dict[str, str]:
        after = self.faults.retry_after_s
        if after is None:
            return {}
        if self.faults.retry_after_http_date:
            return {"Retry-After": email.utils.formatdate(time.time() + after, usegmt=True)}
        return {"Retry-After": f"{after:g}"}
