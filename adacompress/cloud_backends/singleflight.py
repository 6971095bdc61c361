"""Single-flight: identical concurrent calls in this process share one upstream call.

Eight threads uploading the same bytes on a cache miss would otherwise pay eight times for one
answer. The first caller for a key runs the call; the others wait for its result (or its error)
instead of sending their own. Across processes, `CachedBackend` adds a Redis claim on top.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Flight(Generic[T]):
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[T]):
    """`run(key, fn)`: one `fn()` per key at a time; concurrent callers of the same key get its outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight[T]] = {}

    def run(self, key: str, fn: Callable[[], T]) -> tuple[T, bool]:
        """`fn()`'s result and whether this caller ran it (False: it waited for another caller's run)."""
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = _Flight()
        assert flight is not None
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.result, False  # type: ignore[return-value]
        try:
            flight.result = fn()
            return flight.result, True
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()
