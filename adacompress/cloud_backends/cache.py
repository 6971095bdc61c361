"""A response cache so the same upload is never paid for twice: `CachedBackend(inner, cache, params)`.

Keys are the backend name, a digest of the parameters that change the answer (endpoint, max
labels, min score, ...) and the sha256 of the uploaded bytes. Answers live in Redis when a URL
is configured (`ADACOMPRESS_REDIS_URL` or the `redis_url` option; keys under a prefix, with a
TTL), else in files under the user cache directory. The cache is an optimisation, never a
failure: if Redis or the disk goes away, it logs once and the call goes to the provider.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from adacompress.cloud_backends.base import Label, Recognition, VisionBackend
from adacompress.cloud_backends.redact import register_secret
from adacompress.config import settings

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 30 * 24 * 3600.0
DEFAULT_PREFIX = "adacompress:"
REDIS_URL_ENV = "ADACOMPRESS_REDIS_URL"


class ResponseCache(Protocol):
    """Where answers are kept; `get` and `put` never raise."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...


class _Outage:
    """Log a store's failure once per outage, and skip it for `retry_s` before trying again."""

    def __init__(self, what: str, retry_s: float) -> None:
        self.what, self.retry_s = what, retry_s
        self._down_until = 0.0
        self._logged = False
        self._lock = threading.Lock()

    def up(self) -> bool:
        with self._lock:
            return time.monotonic() >= self._down_until

    def failed(self, exc: Exception) -> None:
        with self._lock:
            self._down_until = time.monotonic() + self.retry_s
            first, self._logged = not self._logged, True
        if first:
            log.warning("response cache: %s is unavailable (%s: %s); calls go to the provider uncached "
                        "and the cache is retried every %.0f s", self.what, type(exc).__name__, exc, self.retry_s)

    def recovered(self) -> None:
        with self._lock:
            was_down, self._logged = self._logged, False
        if was_down:
            log.info("response cache: %s is back", self.what)


class DiskCache:
    """One JSON file per answer under `root`, written atomically; entries older than `ttl_s` are misses."""

    def __init__(self, root: str | Path, ttl_s: float | None = DEFAULT_TTL_S) -> None:
        self.root = Path(root)
        self.ttl_s = ttl_s
        self._outage = _Outage(f"the cache directory {self.root}", retry_s=60.0)

    def _path(self, key: str) -> Path:
        name, params, digest = key.rsplit(":", 2)
        return self.root / name / params / digest[:2] / f"{digest}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        try:
            if self.ttl_s is not None and time.time() - path.stat().st_mtime > self.ttl_s:
                return None
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self._outage.failed(exc)
            return None

    def put(self, key: str, value: dict[str, Any]) -> None:
        if not self._outage.up():
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(value))
            os.replace(tmp, path)
        except OSError as exc:
            self._outage.failed(exc)


def _safe_url(url: str) -> str:
    """The URL without its password, for log lines."""
    parts = urlsplit(url)
    if parts.password:
        register_secret(parts.password)
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return parts._replace(netloc=netloc).geturl()
    return url


class RedisCache:
    """Answers in Redis under `prefix` with a TTL; short socket timeouts so a dead Redis costs little."""

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX, ttl_s: float | None = DEFAULT_TTL_S,
                 socket_timeout_s: float = 1.0) -> None:
        import redis

        self.prefix = prefix
        self.ttl_s = ttl_s
        self.url = _safe_url(url)
        self._errors = (redis.RedisError, OSError)
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=socket_timeout_s,
                                           socket_timeout=socket_timeout_s)
        self._outage = _Outage(f"Redis at {self.url}", retry_s=30.0)

    def full_key(self, key: str) -> str:
        return f"{self.prefix}response:{key}"

    def get(self, key: str) -> dict[str, Any] | None:
        if not self._outage.up():
            return None
        try:
            value = self._redis.get(self.full_key(key))
        except self._errors as exc:
            self._outage.failed(exc)
            return None
        self._outage.recovered()
        try:
            return None if value is None else json.loads(value)
        except ValueError:
            return None  # a foreign or corrupt value under our key is a miss; the next answer overwrites it

    def put(self, key: str, value: dict[str, Any]) -> None:
        if not self._outage.up():
            return
        ttl = None if self.ttl_s is None else max(1, int(self.ttl_s))
        try:
            self._redis.set(self.full_key(key), json.dumps(value), ex=ttl)
        except self._errors as exc:
            self._outage.failed(exc)


def open_cache(cache: bool | str | ResponseCache | None = True, redis_url: str | None = None,
               cache_dir: str | Path | None = None, cache_ttl_s: float | None = DEFAULT_TTL_S,
               cache_prefix: str = DEFAULT_PREFIX) -> ResponseCache | None:
    """The cache a backend should use: `cache` is True/"auto", "redis", "disk", False/"off", or a cache."""
    if cache in (False, None, "off", "none"):
        return None
    if not isinstance(cache, bool | str):
        return cache
    url = redis_url or settings().redis_url
    if cache == "redis" or (cache in (True, "auto") and url):
        if not url:
            raise ValueError(f"cache='redis' needs redis_url= or {REDIS_URL_ENV}")
        return RedisCache(url, cache_prefix, cache_ttl_s)
    if cache in (True, "auto", "disk"):
        return DiskCache(Path(cache_dir) if cache_dir else settings().cache_dir / "responses", cache_ttl_s)
    raise ValueError(f"unknown cache setting {cache!r}; use auto, redis, disk or off")


def cache_key(backend: str, params: dict[str, Any], image_bytes: bytes) -> str:
    params_digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    return f"{backend}:{params_digest}:{hashlib.sha256(image_bytes).hexdigest()}"


class CachedBackend(VisionBackend):
    """Answers repeated uploads from `cache`; a hit sends nothing and counts `stats.cache_hits`, not a call."""

    def __init__(self, inner: VisionBackend, cache: ResponseCache | None, params: dict[str, Any]) -> None:
        super().__init__(max_labels=inner.max_labels, min_score=0.0)
        self.inner = inner
        self.name = inner.name
        self.cache = cache
        self.params = params
        self.price_per_1k_usd: float | None = None
        """Price used by `cost.cost_report`; set by the stack builder."""

    def recognize(self, image_bytes: bytes) -> Recognition:
        if self.cache is None:
            return super().recognize(image_bytes)
        started = time.perf_counter()
        stored = self.cache.get(cache_key(self.name, self.params, image_bytes))
        if stored is None:
            return super().recognize(image_bytes)
        self.stats.add(cache_hits=1)
        labels = tuple(Label(name, float(score)) for name, score in stored["labels"])
        return Recognition(labels, stored["raw"], time.perf_counter() - started, len(image_bytes))

    def _recognize(self, image_bytes: bytes) -> tuple[list[Label], dict[str, Any]]:
        answer = self.inner.recognize(image_bytes)
        if self.cache is not None:
            self.cache.put(cache_key(self.name, self.params, image_bytes),
                           {"labels": [[lb.name, lb.score] for lb in answer.labels], "raw": answer.raw})
        return list(answer.labels), answer.raw

    def close(self) -> None:
        self.inner.close()
