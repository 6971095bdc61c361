"""The upload proxy: an ASGI app that serves cloud vision calls through the daemon, sending fewer bytes.

Every request is admitted (or refused with 503 and `Retry-After` when `max_in_flight` are already in),
decided in a worker (`DecisionPool`), then served by the daemon in a thread (the backend calls block),
all under one deadline. `POST /v1/recognize` answers in our JSON; the provider-shaped drop-in routes
(`adacompress.service.dropin`) reuse the same path. `/healthz`, `/readyz`, `/metrics`, `/v1/status`
say how it is doing. Errors are JSON `{"error": {"code", "message"}}` with a stable code.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from adacompress.cloud_backends.base import (
    AuthError,
    BackendError,
    BackendUnavailable,
    QuotaExhausted,
    Recognition,
    Throttled,
    VisionBackend,
)
from adacompress.errors import AdaCompressError, BadImage, ImageTooLarge, TooManyPixels
from adacompress.service.daemon import Daemon, Served
from adacompress.service.decisions import DecisionPool
from adacompress.service.events import log_event
from adacompress.service.metrics import ProxyMetrics
from adacompress.service.store import Store, StoreError
from adacompress.upload import Upload

log = logging.getLogger(__name__)


class ProxyError(AdaCompressError):
    """An answer the proxy gives instead of a recognition: an HTTP status, a stable code, maybe Retry-After."""

    def __init__(self, status: int, code: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.retry_after_s = status, code, retry_after_s


@dataclass(frozen=True)
class ProxyConfig:
    """Limits of one proxy process; every number has its unit in its name."""

    max_upload_bytes: int = 20 * 1024 * 1024
    """Largest request body accepted (413 beyond)."""
    max_in_flight: int = 32
    """Requests admitted at once; more are refused with 503 and Retry-After."""
    request_timeout_s: float = 30.0
    """Deadline from admission to answer (504 beyond)."""
    api_key: str | None = field(default=None, repr=False)
    """Bearer token clients must send (None: no client auth)."""
    retry_after_s: float = 1.0
    """Retry-After sent with a 503 when the queue is full or the backend is unavailable."""
    passthrough: bool = False
    """Forward the bytes as sent, with no decision and no daemon: the baseline `bench/proxy_load.py` compares."""


@dataclass(frozen=True)
class ProxyAnswer:
    """What one image got through the proxy: the answer returned, and what was sent for it."""

    recognition: Recognition
    action: str
    """The action sent (`jpeg:10`), or `as-sent` in pass-through mode."""
    bytes_sent: int
    reference_bytes: int
    mode: str
    """`inference`, `estimate` (the reference's answer is served) or `passthrough`."""
    policy_version: str | None

    @classmethod
    def of(cls, served: Served) -> ProxyAnswer:
        decision = served.decision
        return cls(served.recognition, decision.action.label, decision.bytes, served.reference_bytes, served.mode,
                   served.policy_version)


@dataclass
class ProxyService:
    """What the app serves with: the daemon and its backend, the decision workers, the store, the metrics."""

    daemon: Daemon
    backend: VisionBackend
    pool: DecisionPool
    config: ProxyConfig = field(default_factory=ProxyConfig)
    store: Store | None = None
    metrics: ProxyMetrics = field(default_factory=ProxyMetrics)
    on_close: list[Callable[[], None]] = field(default_factory=list)
    in_flight: int = 0
    _version_shown: str | None = None

    async def recognize(self, body: bytes, route: str) -> ProxyAnswer:
        """Admit, decide in a worker, serve through the daemon, all within the deadline."""
        if self.in_flight >= self.config.max_in_flight:
            self.metrics.rejected.inc()
            raise ProxyError(503, "overloaded", f"{self.in_flight} requests in flight, the limit is "
                             f"{self.config.max_in_flight}; retry shortly", self.config.retry_after_s)
        self.in_flight += 1
        self.metrics.queue_depth.set(self.in_flight)
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(self._serve(body, route), self.config.request_timeout_s)
        except TimeoutError:
            raise ProxyError(504, "deadline_exceeded", f"no answer within {self.config.request_timeout_s:.0f} s; "
                             "the request may still reach the backend once") from None
        finally:
            self.in_flight -= 1
            self.metrics.queue_depth.set(self.in_flight)
            self.metrics.request_seconds.observe(time.perf_counter() - started)

    async def _serve(self, body: bytes, route: str) -> ProxyAnswer:
        self.metrics.bytes_in.inc(len(body))
        if self.config.passthrough:
            recognition = await run_in_threadpool(self.backend.recognize, body)
            answer = ProxyAnswer(recognition, "as-sent", len(body), len(body), "passthrough", None)
            self._count(answer, route)
            return answer
        policy, size_weight, min_rung = self.daemon.snapshot()
        started = time.perf_counter()
        decision = await self.pool.decide(policy, body, size_weight, min_rung)
        self.metrics.decide_seconds.observe(time.perf_counter() - started)
        if decision.exited_early:
            self.metrics.early_exits.inc()

        def upload() -> Upload:  # for an estimate: the reference is uncapped, so the full decode is certain
            return Upload.of(body, policy.limits, defer_full_decode=False)

        served = await run_in_threadpool(self.daemon.serve, policy, decision, upload)
        answer = ProxyAnswer.of(served)
        self._count(answer, route)
        return answer

    def _count(self, answer: ProxyAnswer, route: str) -> None:
        m = self.metrics
        m.uploads.labels(route, answer.mode).inc()
        m.bytes_sent.inc(answer.bytes_sent)
        m.bytes_saved.inc(max(0, answer.reference_bytes - answer.bytes_sent))
        if answer.mode == "estimate":
            m.estimate_bytes.inc(answer.reference_bytes)
        m.backend_seconds.observe(answer.recognition.latency_s)
        state = self.daemon.state_json()
        m.p_est.set(state["p_est"])
        m.estimated_share.set(state["estimated_share"])
        if state["size_weight"] is not None:
            m.size_weight.set(state["size_weight"])
        if state["estimated_accuracy"] is not None:
            m.estimated_accuracy.set(state["estimated_accuracy"])
        m.cache_hits.set(self.backend.stats.snapshot().get("cache_hits", 0))
        if answer.policy_version is not None and answer.policy_version != self._version_shown:
            self._version_shown = answer.policy_version
            m.policy.clear()
            m.policy.labels(answer.policy_version).set(1)

    def readiness(self) -> dict[str, Any]:
        """Each check and whether it passes: the policy loaded, the backend's endpoint accepting connections,
        the store answering (if shared)."""
        checks: dict[str, Any] = {"policy": self.daemon.policy.version, "backend": backend_reachable(self.backend)}
        if self.store is not None and not self.store.embedded:
            try:
                self.store.get(self.store.keys.policy_current)
                checks["store"] = True
            except StoreError as exc:
                checks["store"] = False
                checks["store_error"] = str(exc)
        return checks

    def status(self) -> dict[str, Any]:
        return {"backend": self.backend.name, "policy_version": self.daemon.policy.version,
                "workers": self.pool.workers, "in_flight": self.in_flight, "replica": self.daemon.replica,
                "daemon": self.daemon.state_json()}

    def close(self) -> None:
        """Stop the helpers (watcher, learner), the workers and the daemon, send what transitions wait, close."""
        for close in self.on_close:
            close()
        self.pool.close()
        self.daemon.close()
        if self.daemon.buffer is not None:
            self.daemon.buffer.flush()
        if self.store is not None:
            self.store.close()


def backend_reachable(backend: VisionBackend, timeout_s: float = 1.0) -> bool:
    """Whether the backend's endpoint accepts a TCP connection (an in-process backend always does)."""
    while not hasattr(backend, "endpoint") and hasattr(backend, "inner"):
        backend = backend.inner  # the cache and retry layers wrap the client
    endpoint = getattr(backend, "endpoint", None)
    if not endpoint:
        return True
    parts = urlsplit(endpoint)
    try:
        with socket.create_connection((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)),
                                      timeout=timeout_s):
            return True
    except OSError:
        return False


def error_for(exc: Exception) -> ProxyError:
    """The HTTP answer for an error raised while serving."""
    if isinstance(exc, ProxyError):
        return exc
    if isinstance(exc, ImageTooLarge | TooManyPixels):
        return ProxyError(413, exc.code, str(exc))
    if isinstance(exc, BadImage):
        return ProxyError(400, exc.code, str(exc))
    if isinstance(exc, Throttled):
        return ProxyError(429, exc.code, f"the backend is throttling: {exc}", exc.retry_after_s or 1.0)
    if isinstance(exc, QuotaExhausted):
        return ProxyError(429, exc.code, f"the backend's quota is spent: {exc}", 60.0)
    if isinstance(exc, BackendUnavailable):
        return ProxyError(503, exc.code, f"the backend is unavailable: {exc}", 1.0)
    if isinstance(exc, AuthError):
        return ProxyError(502, exc.code, "the backend refused the proxy's credentials; check the proxy's "
                          f"provider credentials ({exc})")
    if isinstance(exc, BackendError):
        return ProxyError(502, exc.code, f"the backend failed: {exc}")
    if isinstance(exc, AdaCompressError):
        return ProxyError(500, exc.code, str(exc))
    return ProxyError(500, "internal_error", f"{type(exc).__name__}: {exc}")


def error_response(error: ProxyError) -> JSONResponse:
    headers = {"Retry-After": str(max(1, round(error.retry_after_s)))} if error.retry_after_s is not None else {}
    return JSONResponse({"error": {"code": error.code, "message": str(error)}}, error.status, headers=headers)


def check_declared_length(request: Request, limit_bytes: int) -> None:
    """Refuse with 413 a body whose declared length is over the limit, before reading any of it."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit_bytes:
        raise ProxyError(413, "upload_too_large", f"body of {int(declared)} bytes; the limit is {limit_bytes}")


async def read_body(request: Request, limit_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit_bytes` (never buffered beyond)."""
    check_declared_length(request, limit_bytes)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit_bytes:
            raise ProxyError(413, "upload_too_large", f"body over {limit_bytes} bytes, the limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def image_of(request: Request, limit_bytes: int) -> bytes:
    """The image in a raw body, or in the multipart field `image`."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        check_declared_length(request, limit_bytes)
        form = await request.form(max_part_size=limit_bytes)
        part = form.get("image")
        if part is None or isinstance(part, str):
            raise ProxyError(400, "missing_image", "multipart upload without a file field named `image`")
        data = await part.read()
        if len(data) > limit_bytes:
            raise ProxyError(413, "upload_too_large", f"image of {len(data)} bytes; the limit is {limit_bytes}")
        return data
    data = await read_body(request, limit_bytes)
    if not data:
        raise ProxyError(400, "missing_image", "empty body: send the image bytes, or multipart with field `image`")
    return data


def authorized(request: Request, api_key: str | None) -> bool:
    if api_key is None:
        return True
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())


def create_app(service: ProxyService, routes: list[Callable[[FastAPI, ProxyService], None]] | None = None) -> FastAPI:
    """The ASGI app over `service`; `routes` add more (the providers' drop-in routes)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        log_event(log, logging.INFO, "proxy_stopping", in_flight=service.in_flight)
        service.close()

    app = FastAPI(title="adacompress proxy", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.service = service

    @app.exception_handler(ProxyError)
    async def proxy_error(request: Request, exc: ProxyError) -> JSONResponse:
        service.metrics.errors.labels(exc.code).inc()
        return error_response(exc)

    def guarded(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            if not authorized(request, service.config.api_key):
                raise ProxyError(401, "unauthorized", "missing or wrong bearer token (Authorization: Bearer KEY)")
            try:
                return await handler(request)
            except ProxyError:
                raise
            except Exception as exc:
                error = error_for(exc)
                if error.status >= 500:
                    log_event(log, logging.WARNING, "request_failed", code=error.code, status=error.status,
                              error=str(exc))
                raise error from exc
        return run

    @app.post("/v1/recognize")
    @guarded
    async def recognize(request: Request) -> Response:
        body = await image_of(request, service.config.max_upload_bytes)
        served = await service.recognize(body, "v1")
        return JSONResponse(answer_json(served, service.backend.name, len(body)))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = await run_in_threadpool(service.readiness)
        ready = all(value is not False for value in checks.values())
        return JSONResponse({"ready": ready, **checks}, 200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/status")
    @guarded
    async def status(request: Request) -> JSONResponse:
        return JSONResponse(service.status())

    for add in routes or []:
        add(app, service)
    return app


def answer_json(answer: ProxyAnswer, backend: str, bytes_in: int) -> dict[str, Any]:
    """`/v1/recognize`'s answer."""
    return {"labels": [{"name": label.name, "score": label.score} for label in answer.recognition.labels],
            "backend": backend, "action": answer.action, "bytes_in": bytes_in, "bytes_sent": answer.bytes_sent,
            "reference_bytes": answer.reference_bytes, "policy_version": answer.policy_version,
            "estimated": answer.mode == "estimate"}
