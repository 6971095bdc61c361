"""Drop-in routes: each provider's own API, served through the daemon, so a client changes only its endpoint.

A stock boto3 Rekognition client with `endpoint_url` set to the proxy, the Baidu SDK, Face++ or Google
clients: each request is parsed by the provider's wire format (`adacompress.cloud_backends.wire`, the
same code the fake servers run), every image in it is served by the daemon (compressed, maybe estimated),
and the answer goes back in the provider's shape; so do its errors. Upstream, the proxy calls its own
backend with its own credentials. `X-Adacompress-*` headers say what was sent (action, bytes sent,
reference bytes, estimates, policy version).

Client credentials: without `ADACOMPRESS_API_KEY` any well-formed credentials pass (the proxy is bound to
loopback by default). With it, clients authenticate with access key id `ADACOMPRESS_ACCESS_KEY_ID`
(default `adacompress`) and the API key as secret: Rekognition's SigV4 (access key / secret key), Baidu's
token route (client_id / client_secret; tokens the proxy issued), Face++'s api_key / api_secret, and
Google's `key` (the API key itself).
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from adacompress.cloud_backends.base import AuthError, QuotaExhausted, Throttled
from adacompress.cloud_backends.wire import (
    PROVIDERS,
    ErrorKind,
    RecognitionRequest,
    WireError,
    WireFormat,
    WireReply,
    WireRequest,
    baidu,
    rekognition,
)
from adacompress.config import secret
from adacompress.errors import BadImage
from adacompress.service.events import log_event
from adacompress.service.proxy import ProxyAnswer, ProxyError, ProxyService, error_for, read_body

log = logging.getLogger(__name__)

DEFAULT_ACCESS_KEY_ID = "adacompress"
TOKEN_TTL_S = 30 * 24 * 3600
"""Lifetime of a Baidu access token the proxy issues (Baidu's own are 30 days)."""


class ClientAuth:
    """Checks the credentials a drop-in client sent, in its provider's terms."""

    def __init__(self, api_key: str | None, access_key_id: str) -> None:
        self.api_key, self.access_key_id = api_key, access_key_id
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self, fmt: WireFormat, request: WireRequest) -> None:
        """Nothing if the client may call; else `WireError` with the provider's refusal."""
        sent = fmt.credentials(request)  # the provider's own error when they are missing
        if self.api_key is None:
            return
        if fmt.name == "rekognition":
            rekognition.verify_sigv4(request, {self.access_key_id: self.api_key})
        elif fmt.name == "baidu":
            self._check_token(baidu.read_access_token(request))
        elif fmt.name == "facepp":
            if not (_same(sent.get("api_key"), self.access_key_id) and _same(sent.get("api_secret"), self.api_key)):
                raise WireError(fmt.error_reply(ErrorKind.UNAUTHORIZED))
        elif not _same(sent.get("key"), self.api_key):  # google
            raise WireError(fmt.error_reply(ErrorKind.UNAUTHORIZED))

    def issue_token(self, request: WireRequest) -> WireReply:
        """Baidu's token route: a token for a client whose id and secret are the proxy's."""
        grant = baidu.parse_token_request(request)
        if self.api_key is not None:
            baidu.check_client(grant, self.access_key_id, self.api_key)
        token = baidu.new_access_token(TOKEN_TTL_S, app_id="adacompress")
        with self._lock:
            now = time.time()
            self._tokens = {t: expiry for t, expiry in self._tokens.items() if expiry > now}
            self._tokens[token] = now + TOKEN_TTL_S
        return baidu.token_reply(token, TOKEN_TTL_S)

    def _check_token(self, token: str) -> None:
        with self._lock:
            expiry = self._tokens.get(token)
        if expiry is None:
            raise WireError(baidu.error_reply(ErrorKind.UNAUTHORIZED))
        if expiry <= time.time():
            raise WireError(baidu.error(111))


def _same(sent: str | None, expected: str) -> bool:
    return sent is not None and hmac.compare_digest(sent.encode(), expected.encode())


async def wire_request(request: Request, limit_bytes: int) -> WireRequest:
    return WireRequest(request.method, request.url.path, dict(request.query_params),
                       {name.lower(): value for name, value in request.headers.items()},
                       await read_body(request, limit_bytes))


def send(reply: WireReply) -> Response:
    return Response(reply.body, reply.status, headers=reply.headers, media_type=reply.content_type)


def upstream_error(fmt: WireFormat, exc: Exception) -> WireReply:
    """A failure to serve, in the provider's error shape (the client's SDK then retries or raises as usual)."""
    error = error_for(exc)
    if isinstance(exc, Throttled) or error.code == "overloaded":
        return fmt.error_reply(ErrorKind.THROTTLED, retry_after_s=error.retry_after_s)
    if isinstance(exc, QuotaExhausted):
        return fmt.error_reply(ErrorKind.QUOTA_EXCEEDED)
    if error.status in (503, 504):
        return fmt.error_reply(ErrorKind.UNAVAILABLE, retry_after_s=error.retry_after_s)
    if error.status == 413:
        return fmt.error_reply(ErrorKind.IMAGE_TOO_LARGE)
    if isinstance(exc, AuthError):  # the proxy's upstream credentials, not the client's
        return fmt.error_reply(ErrorKind.INTERNAL, "the proxy's upstream credentials were refused")
    return fmt.error_reply(ErrorKind.INTERNAL)


def mount(app: FastAPI, service: ProxyService) -> None:
    """Every provider's routes on `app`."""
    auth = ClientAuth(service.config.api_key, secret("ADACOMPRESS_ACCESS_KEY_ID") or DEFAULT_ACCESS_KEY_ID)
    limit = service.config.max_upload_bytes

    def recognition(fmt: WireFormat):
        async def handle(request: Request) -> Response:
            started = time.perf_counter()
            try:
                wire = await wire_request(request, limit)
                auth.check(fmt, wire)
                items = fmt.parse(wire, fmt.default_limits)
                answers: list[Any] = []
                served: list[ProxyAnswer] = []
                for item in items:
                    answers.append(await _answer(service, fmt, item, served))
                reply = fmt.reply(items, answers).with_headers(served_headers(served))
            except WireError as exc:
                reply = exc.reply
            except ProxyError as exc:
                reply = upstream_error(fmt, exc)
            except Exception as exc:
                reply = upstream_error(fmt, exc)
                log_event(log, logging.WARNING, "dropin_failed", provider=fmt.name, error=str(exc),
                          code=getattr(exc, "code", type(exc).__name__))
            if reply.status >= 400:
                service.metrics.errors.labels(f"{fmt.name}:{reply.status}").inc()
            service.metrics.request_seconds.observe(time.perf_counter() - started)
            return send(reply)
        return handle

    async def token(request: Request) -> Response:
        try:
            return send(auth.issue_token(await wire_request(request, limit)))
        except WireError as exc:
            return send(exc.reply)

    for fmt in PROVIDERS.values():
        route = fmt.recognition_route
        app.add_api_route(route.path, recognition(fmt), methods=list(route.methods), include_in_schema=False)
    app.add_api_route(baidu.TOKEN_ROUTE.path, token, methods=list(baidu.TOKEN_ROUTE.methods),
                      include_in_schema=False)


async def _answer(service: ProxyService, fmt: WireFormat, item: Any, served: list[ProxyAnswer]) -> Any:
    """One item's answer: its labels as served through the daemon (noted in `served`), or why its image was
    refused."""
    if not isinstance(item, RecognitionRequest):
        return item
    try:
        result = await service.recognize(item.image, fmt.name)
    except BadImage as exc:
        return exc
    served.append(result)
    return result.recognition.labels


def served_headers(served: list[ProxyAnswer]) -> dict[str, str]:
    """What the proxy did, for clients that want to know (boto3: `ResponseMetadata.HTTPHeaders`)."""
    if not served:
        return {}
    return {"X-Adacompress-Action": ",".join(s.action for s in served),
            "X-Adacompress-Bytes-Sent": str(sum(s.bytes_sent for s in served)),
            "X-Adacompress-Reference-Bytes": str(sum(s.reference_bytes for s in served)),
            "X-Adacompress-Estimated": str(sum(s.mode == "estimate" for s in served)),
            "X-Adacompress-Policy-Version": served[-1].policy_version or "none"}
