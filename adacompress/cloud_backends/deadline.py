"""The overall deadline of the current call, visible to the client code deep below the retry layer.

`ResilientBackend` opens a scope with `deadline_scope`; HTTP clients read `remaining_s()` to
shrink their connect/read timeouts, so one slow attempt cannot outlive the whole call.
A context variable (not an argument) keeps `VisionBackend.recognize(bytes)` unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from adacompress.cloud_backends.base import BackendUnavailable

_DEADLINE: ContextVar[tuple[float, float] | None] = ContextVar("adacompress_deadline", default=None)


class DeadlineExceeded(BackendUnavailable):
    """The call's overall deadline passed before the provider answered."""

    code = "deadline_exceeded"


@contextmanager
def deadline_scope(seconds: float) -> Iterator[None]:
    """Calls inside must finish within `seconds` of now (a nested scope can only shorten it)."""
    at = time.monotonic() + seconds
    outer = _DEADLINE.get()
    if outer is not None and outer[0] < at:
        at, seconds = outer
    token = _DEADLINE.set((at, seconds))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining_s() -> float | None:
    """Seconds left in the current scope, or None outside any scope."""
    current = _DEADLINE.get()
    return None if current is None else current[0] - time.monotonic()


def budget_s() -> float | None:
    """The scope's whole budget in seconds, for error messages."""
    current = _DEADLINE.get()
    return None if current is None else current[1]


def require_time(backend: str, what: str) -> float | None:
    """Remaining seconds, raising `DeadlineExceeded` when none are left."""
    left = remaining_s()
    if left is not None and left <= 0:
        raise DeadlineExceeded(f"{backend}: the {budget_s():.1f} s deadline passed before {what}")
    return left
