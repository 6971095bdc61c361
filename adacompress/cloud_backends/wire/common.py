"""What every provider's wire format shares: the request and reply, the error kinds, the typed parse error.

Nothing here knows an HTTP server: the fakes (http.server) and the upload proxy (ASGI) each turn
their framework's request into a `WireRequest` and send a `WireReply` back unchanged, so both
speak each provider's format through one implementation.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property
from typing import Any, Protocol
from urllib.parse import parse_qsl

from adacompress.cloud_backends.base import Label
from adacompress.cloud_backends.limits import ImageLimits
from adacompress.errors import AdaCompressError, BadImage


@dataclass(frozen=True)
class WireRequest:
    """One HTTP request as the provider's server sees it, whichever server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Header names lower-cased."""
    body: bytes

    @cached_property
    def form(self) -> dict[str, bytes]:
        """Fields of a urlencoded or multipart/form-data body (blank values kept), parsed once per request."""
        content_type = self.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {content_type}\r\n\r\n".encode() + self.body)
            return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True) or b""
                    for part in message.iter_parts()}
        return {k: v.encode("latin-1") for k, v in parse_qsl(self.body.decode("latin-1"), keep_blank_values=True)}


@dataclass(frozen=True)
class WireReply:
    """One HTTP reply, ready to send as is (status, body, Content-Type, extra headers)."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, content_type: str = "application/json",
             headers: Mapping[str, str] | None = None) -> WireReply:
        return cls(status, json.dumps(payload).encode(), content_type, dict(headers or {}))

    @classmethod
    def text(cls, status: int, text: str) -> WireReply:
        return cls(status, text.encode(), content_type="text/plain")

    def with_headers(self, headers: Mapping[str, str]) -> WireReply:
        """This reply with `headers` added (replacing any of the same name)."""
        return replace(self, headers={**self.headers, **headers})


class ErrorKind(StrEnum):
    """The failures a server answers in the provider's own error shape; each provider maps them to its codes.

    - bad_request: the request is malformed (JSON, fields, parameters).
    - bad_image: the image cannot be decoded or is not an accepted format.
    - image_too_large: the image (or the encoded request) is over the provider's size limit.
    - throttled: the service asks the caller to slow down (send `retry_after_s` when known).
    - rate_limited: the caller's own request rate is over its allowance (Rekognition's provisioned TPS).
    - quota_exceeded: the account's quota (daily, balance) is spent; retrying will not help until it resets.
    - unauthorized: the credentials are wrong or revoked.
    - internal: the server failed.
    - unavailable: the service (or an upstream it needs) is temporarily unavailable.
    - not_found: no such route or operation.
    """

    BAD_REQUEST = "bad_request"
    BAD_IMAGE = "bad_image"
    IMAGE_TOO_LARGE = "image_too_large"
    THROTTLED = "throttled"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"
    UNAUTHORIZED = "unauthorized"
    INTERNAL = "internal"
    UNAVAILABLE = "unavailable"
    NOT_FOUND = "not_found"


class WireError(AdaCompressError):
    """A request the provider would refuse; `reply` is the provider's own answer, to be sent unchanged."""

    code = "wire_error"

    def __init__(self, reply: WireReply) -> None:
        super().__init__(f"HTTP {reply.status}: {reply.body[:200].decode('utf-8', 'replace')}")
        self.reply = reply


class UnknownWireFormat(AdaCompressError, KeyError):
    code = "unknown_wire_format"

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class RecognitionRequest:
    """One image to label and the provider parameters that shape its answer."""

    image: bytes
    """The decoded image, already checked against the provider's limits."""
    params: dict[str, Any]
    """Parsed parameters in our names (e.g. `max_labels`); the provider's `labels_reply` reads them back."""


BatchItem = RecognitionRequest | BadImage | None
"""One image of a request: to label; refused on its own (answered inside a successful reply, as Google
does); or None when it asks for nothing we answer (a Google item without LABEL_DETECTION)."""
Answer = Sequence[Label] | BadImage | None
"""What the server found for one item: its labels, why the image was refused, or None for a None item."""


@dataclass(frozen=True)
class Route:
    """A path and the methods the provider serves on it."""

    path: str
    methods: tuple[str, ...] = ("POST",)

    def matches(self, request: WireRequest) -> bool:
        return request.path == self.path and request.method in self.methods


def retry_after_headers(retry_after_s: float | None) -> dict[str, str]:
    """`Retry-After` in whole seconds, rounded up (RFC 9110's delta-seconds), or nothing when unknown."""
    if retry_after_s is None:
        return {}
    return {"Retry-After": str(max(0, math.ceil(retry_after_s)))}


class ErrorReply(Protocol):
    def __call__(self, kind: ErrorKind, message: str | None = None,
                 retry_after_s: float | None = None) -> WireReply: ...


class BatchReply(Protocol):
    def __call__(self, items: Sequence[BatchItem], answers: Sequence[Answer], **options: Any) -> WireReply: ...


@dataclass(frozen=True)
class WireFormat:
    """One provider's drop-in API as a server mounts it: routes, parsing, answers and errors.

    A server handles the recognition route as: `credentials` (when it checks them) -> `parse` ->
    label each `RecognitionRequest` item (an item that is not one is its own answer) -> `reply`;
    any `WireError` on the way carries the reply to send. Failures other than a bad image answer
    the whole request with `error_reply`.
    """

    name: str
    recognition_route: Route
    other_routes: tuple[Route, ...]
    """Routes a drop-in server must also serve with provider-specific code (Baidu's token route)."""
    default_limits: ImageLimits
    credentials: Callable[[WireRequest], dict[str, str]]
    """What the client sent to authenticate, or `WireError` with the provider's reply when it is missing."""
    parse: Callable[[WireRequest, ImageLimits], list[BatchItem]]
    """The images of a recognition request (one, except on Google), or `WireError`."""
    reply: BatchReply
    """The provider's success reply for `items` and their `answers` (same length, same order)."""
    error_reply: ErrorReply

    @property
    def routes(self) -> tuple[Route, ...]:
        return (self.recognition_route, *self.other_routes)


def one_image_format(name: str, recognition_route: Route, default_limits: ImageLimits,
                     credentials: Callable[[WireRequest], dict[str, str]],
                     parse_recognition: Callable[[WireRequest, ImageLimits], RecognitionRequest],
                     labels_reply: Callable[..., WireReply],
                     image_error_reply: Callable[[BadImage, Mapping[str, Any]], WireReply],
                     error_reply: ErrorReply, other_routes: tuple[Route, ...] = ()) -> WireFormat:
    """The `WireFormat` of a provider that takes one image per request; a refused image is the whole reply."""

    def parse(request: WireRequest, limits: ImageLimits) -> list[BatchItem]:
        return [parse_recognition(request, limits)]

    def reply(items: Sequence[BatchItem], answers: Sequence[Answer], **options: Any) -> WireReply:
        if len(items) != 1 or len(answers) != 1 or not isinstance(items[0], RecognitionRequest) \
                or answers[0] is None:
            raise ValueError(f"{name}: a reply answers exactly one parsed image with its labels or a BadImage; "
                             f"got {len(items)} items and answers {list(answers)!r:.80}")
        answer = answers[0]
        if isinstance(answer, BadImage):
            return image_error_reply(answer, items[0].params)
        return labels_reply(answer, items[0].params, **options)

    return WireFormat(name, recognition_route, other_routes, default_limits, credentials, parse, reply, error_reply)
