"""A response cache so the same upload is never paid for twice: `CachedBackend(inner, cache, params)`.

Keys are the backend name, a digest of what besides the bytes decides the answer (endpoint,
max labels, min score, ..., the epoch setting and the provider's model version) and the sha256
of the uploaded bytes. Where answers name the model (Rekognition's `LabelModelVersion`), the
current version is itself kept in the cache for `model_check_s` and learnt again from the next
upstream answer, so a new model retires the old answers; elsewhere only the TTL or a change of
`ADACOMPRESS_CACHE_EPOCH` can. `recognize(data, use_cache=False)` always asks the provider (and
stores its answer): estimates must see the provider as it is now.

Entries are checked on the way out: anything unreadable (a foreign value, an old format) is a
miss counted in `stats.cache_unreadable`. Identical concurrent misses go upstream once, in this
process (single-flight) and, on Redis, across processes (a short claim on the key).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from adacompress.cloud_backends.base import Label, Recognition, VisionBackend
from adacompress.cloud_backends.cache_stores import (
    DEFAULT_PREFIX,
    DiskCache,
    RedisCache,
    ResponseCache,
    open_cache,
)
from adacompress.cloud_backends.singleflight import SingleFlight
from adacompress.config import settings

__all__ = ["CachedBackend", "DiskCache", "RedisCache", "ResponseCache", "open_cache", "DEFAULT_PREFIX"]

ENTRY_FORMAT = 2
VERSIONED_TTL_S = 30 * 24 * 3600.0
"""Answers of a provider that names its model live 30 days: a model change is noticed anyway."""
UNVERSIONED_TTL_S = 7 * 24 * 3600.0
"""Answers of a provider that does not name its model live 7 days: a silent change ages out within a week."""
DEFAULT_MODEL_CHECK_S = 3600.0
"""How long a learnt model version is trusted before one call re-checks it upstream."""
WAIT_POLL_S = 0.05


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def encode_entry(payload: dict[str, Any], ttl_s: float | None) -> bytes:
    expires_at = None if ttl_s is None else time.time() + ttl_s
    return json.dumps({"format": ENTRY_FORMAT, "expires_at": expires_at, **payload}).encode()


def decode_entry(value: bytes, fields: tuple[str, ...]) -> dict[str, Any] | None:
    """The entry's payload if it is one of ours, of this format, with `fields`; None otherwise."""
    try:
        entry = json.loads(value)
    except ValueError:
        return None
    if not isinstance(entry, dict) or entry.get("format") != ENTRY_FORMAT or not all(f in entry for f in fields):
        return None
    return entry


def _labels(entry: dict[str, Any]) -> tuple[Label, ...] | None:
    try:
        return tuple(Label(str(name), float(score)) for name, score in entry["labels"])
    except (TypeError, ValueError):
        return None


class CachedBackend(VisionBackend):
    """Answers repeated uploads from `cache`; a hit sends nothing and counts `stats.cache_hits`, not a call."""

    def __init__(self, inner: VisionBackend, cache: ResponseCache | None, params: dict[str, Any],
                 ttl_s: float | None = None, epoch: str | None = None,
                 model_check_s: float = DEFAULT_MODEL_CHECK_S, wait_s: float = 30.0) -> None:
        super().__init__(max_labels=inner.max_labels, min_score=0.0)
        self.inner = inner
        self.name = inner.name
        self.limits = inner.limits
        self.cache = cache
        self.params = params
        self.versioned = self._raw().reports_model_version
        self.ttl_s = ttl_s if ttl_s is not None else (VERSIONED_TTL_S if self.versioned else UNVERSIONED_TTL_S)
        self.epoch = settings().cache_epoch if epoch is None else epoch
        self.model_check_s = model_check_s
        self.wait_s = wait_s
        """How long a caller waits for another process fetching the same upload before fetching it itself."""
        self.price_per_1k_usd: float | None = None
        """Price used by `cost.cost_report`; set by the stack builder."""
        self._base = _digest({**params, "epoch": self.epoch})
        self._flight: SingleFlight[Recognition] = SingleFlight()

    def _raw(self) -> VisionBackend:
        layer = self.inner
        while hasattr(layer, "inner"):
            layer = layer.inner  # type: ignore[attr-defined]
        return layer

    def _entry_key(self, model: str | None, sha: str) -> str:
        return f"response:{self.name}:{_digest([self._base, model])}:{sha}"

    def _model_key(self) -> str:
        return f"model:{self.name}:{self._base}:current"

    def _read(self, key: str, fields: tuple[str, ...]) -> dict[str, Any] | None:
        """A live entry under `key`, or None; unreadable ones are counted."""
        value = self.cache.get(key)  # type: ignore[union-attr]
        if value is None:
            return None
        entry = decode_entry(value, fields)
        if entry is None:
            self.stats.add(cache_unreadable=1)
            return None
        expires_at = entry.get("expires_at")
        if isinstance(expires_at, int | float) and expires_at < time.time():
            return None
        return entry

    def _current_model(self) -> tuple[bool, str | None]:
        """(known, model): unversioned providers always know (None); versioned ones until the check is due."""
        if not self.versioned:
            return True, None
        record = self._read(self._model_key(), ("model",))
        if record is None or not isinstance(record["model"], str):
            return False, None
        return True, record["model"]

    def _lookup(self, sha: str, started: float, size: int) -> Recognition | None:
        known, model = self._current_model()
        if not known:
            return None
        entry = self._read(self._entry_key(model, sha), ("labels", "raw"))
        labels = None if entry is None else _labels(entry)
        if entry is not None and (labels is None or not isinstance(entry["raw"], dict)):
            self.stats.add(cache_unreadable=1)
            return None
        if labels is None:
            return None
        self.stats.add(cache_hits=1)
        return Recognition(labels, entry["raw"], time.perf_counter() - started, size)  # type: ignore[index]

    def recognize(self, image_bytes: bytes, *, use_cache: bool = True) -> Recognition:
        if self.cache is None or not use_cache:
            return super().recognize(image_bytes)
        started = time.perf_counter()
        sha = hashlib.sha256(image_bytes).hexdigest()
        hit = self._lookup(sha, started, len(image_bytes))
        if hit is not None:
            return hit
        answer, led = self._flight.run(sha, lambda: self._fetch_once(image_bytes, sha, started))
        if not led:
            self.stats.add(cache_hits=1)
        return answer

    def _fetch_once(self, image_bytes: bytes, sha: str, started: float) -> Recognition:
        """Go upstream unless another process is already fetching these bytes; then wait for its answer."""
        claim = f"{self.name}:{self._base}:{sha}"
        give_up = time.monotonic() + self.wait_s
        while not self.cache.claim(claim, self.wait_s):  # type: ignore[union-attr]
            time.sleep(WAIT_POLL_S)
            hit = self._lookup(sha, started, len(image_bytes))
            if hit is not None:
                return hit
            if time.monotonic() >= give_up:
                return super().recognize(image_bytes)
        try:
            return super().recognize(image_bytes)
        finally:
            self.cache.release(claim)  # type: ignore[union-attr]

    def _recognize(self, image_bytes: bytes) -> tuple[list[Label], dict[str, Any]]:
        answer = self.inner.recognize(image_bytes)
        if self.cache is not None:
            self._store(hashlib.sha256(image_bytes).hexdigest(), answer)
        return list(answer.labels), answer.raw

    def _store(self, sha: str, answer: Recognition) -> None:
        model = self._raw().model_version(answer.raw) if self.versioned else None
        payload = {"labels": [[lb.name, lb.score] for lb in answer.labels], "raw": answer.raw, "model": model}
        cache: ResponseCache = self.cache  # type: ignore[assignment]
        cache.put(self._entry_key(model, sha), encode_entry(payload, self.ttl_s), self.ttl_s)
        if self.versioned and model is not None:
            cache.put(self._model_key(), encode_entry({"model": model}, self.model_check_s), self.model_check_s)

    def close(self) -> None:
        self.inner.close()
