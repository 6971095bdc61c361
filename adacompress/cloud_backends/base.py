"""The one interface every vision backend speaks, its result types and its typed errors.

`VisionBackend.recognize` is the only public entry point: it times the call and keeps the
counters (calls, bytes, failures) that metrics and cost accounting read; subclasses implement
`_recognize` and raise the errors below so retry and breaker logic can tell them apart.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, fields
from typing import Any

from adacompress.cloud_backends.limits import ImageLimits
from adacompress.errors import AdaCompressError, BadImage

__all__ = [
    "AuthError", "BackendError", "BackendStats", "BackendUnavailable", "BadImage", "Label",
    "QuotaExhausted", "Recognition", "Throttled", "UnexpectedAnswer", "VisionBackend",
]


class BackendError(AdaCompressError):
    """A backend call failed for a reason other than the image itself."""

    code = "backend_error"


class Throttled(BackendError):
    """The provider asked us to slow down; retry after `retry_after_s` (or backoff)."""

    code = "throttled"

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QuotaExhausted(BackendError):
    """The account's quota is spent (e.g. a daily limit): stop calling until it resets."""

    code = "quota_exhausted"


class BackendUnavailable(BackendError):
    """A transient failure (5xx, timeout, connection): retry within the deadline."""

    code = "backend_unavailable"


class AuthError(BackendError):
    """Credentials are missing, wrong or not allowed to call this API."""

    code = "auth_error"


class UnexpectedAnswer(BackendError):
    """The endpoint answered with a status or body that is not the provider's documented answer.

    Usually a wrong endpoint or a proxy in the way (a 404 page, an empty JSON object); it is
    never cached as an answer and never retried, since the same endpoint will answer the same.
    """

    code = "unexpected_answer"


@dataclass(frozen=True)
class Label:
    """One answer of a backend: a name and a confidence in 0..1."""

    name: str
    score: float


@dataclass(frozen=True)
class Recognition:
    """A backend's answer to one upload, labels sorted by score, best first."""

    labels: tuple[Label, ...]
    raw: dict[str, Any]
    latency_s: float
    bytes_sent: int

    @property
    def top1(self) -> str | None:
        return self.labels[0].name if self.labels else None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(label.name for label in self.labels)


@dataclass
class BackendStats:
    """Counters every backend keeps; `add` and `snapshot` take a lock, so any thread may use them."""

    calls: int = 0
    """Calls of `recognize` that went past the cache."""
    bytes_sent: int = 0
    failures: int = 0
    cache_hits: int = 0
    cache_unreadable: int = 0
    """Cache entries that could not be read (foreign, old format, corrupt), each served as a miss."""
    sent: int = 0
    """Requests that left the machine (raw clients): pre-checks that refused an image send none."""
    answered: int = 0
    """Requests the provider answered with labels, whether or not their caller still waited: what it bills."""
    abandoned: int = 0
    """Requests sent whose caller gave up at its deadline; their answers still count in `answered`."""
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


class VisionBackend(ABC):
    """A black-box image recognizer: bytes in, labels out."""

    name: str = "backend"
    account: str = ""
    """Who pays for the calls (a digest, never a secret): shared limits are kept per account."""
    reports_model_version: bool = False
    """Whether answers name the provider's model version (see `model_version`)."""
    limits: ImageLimits | None = None
    """What one upload may be (formats, sides, bytes); None: anything Pillow writes (the local backend).
    Wrapping layers pass their inner client's through, so `check_ladder` sees the provider's from the stack."""

    def __init__(self, max_labels: int = 10, min_score: float = 0.0) -> None:
        self.max_labels = max_labels
        self.min_score = min_score
        self.stats = BackendStats()

    def recognize(self, image_bytes: bytes, *, use_cache: bool = True) -> Recognition:
        """Upload `image_bytes` and return the labels, counting the call whether it succeeds or not.

        `use_cache=False` asks a caching layer for a fresh answer (estimates must see the provider
        as it is now); backends without a cache ignore it.
        """
        started = time.perf_counter()
        self.stats.add(calls=1, bytes_sent=len(image_bytes))
        try:
            labels, raw = self._recognize(image_bytes)
        except Exception:
            self.stats.add(failures=1)
            raise
        kept = sorted((lb for lb in labels if lb.score >= self.min_score), key=lambda lb: -lb.score)
        return Recognition(tuple(kept[: self.max_labels]), raw, time.perf_counter() - started, len(image_bytes))

    @abstractmethod
    def _recognize(self, image_bytes: bytes) -> tuple[list[Label], dict[str, Any]]:
        """Call the service; return its labels (any order) and the raw response."""

    def model_version(self, raw: dict[str, Any]) -> str | None:
        """The provider's model version named in a raw answer, or None where the API names none."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections; the default holds none."""
