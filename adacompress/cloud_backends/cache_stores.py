"""Where cached answers are kept: Redis (shared by every process) or files on this machine.

Stores hold opaque bytes under a key; reading and checking an entry is `cache.CachedBackend`'s
job, so a foreign value under our key is its problem, not the store's. A store never raises:
if Redis or the disk goes away, it logs once and the call goes to the provider uncached.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Protocol

from adacompress.config import settings
from adacompress.outage import Outage, safe_url

DEFAULT_PREFIX = "adacompress:"
REDIS_URL_ENV = "ADACOMPRESS_REDIS_URL"
UNCACHED = "calls go to the provider uncached"
log = logging.getLogger("adacompress.cloud_backends.cache")


class ResponseCache(Protocol):
    """Bytes by key; `get`, `put`, `claim` and `release` never raise."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes, ttl_s: float | None) -> None: ...

    def claim(self, key: str, ttl_s: float) -> bool:
        """Become the one process fetching `key` (True), or learn that another one is (False)."""

    def release(self, key: str) -> None: ...


class DiskCache:
    """One file per key under `root`, written atomically; files older than `ttl_s` are misses.

    Keys are `kind:backend:params:name`; answers go to `backend/params/<2 hex>/<sha256>.json`.
    Other processes cannot see a claim here, so single-flight on disk is per process.
    """

    def __init__(self, root: str | Path, ttl_s: float | None = None) -> None:
        self.root = Path(root)
        self.ttl_s = ttl_s
        self._outage = Outage(f"response cache: the cache directory {self.root}", 60.0, UNCACHED, log)

    def _path(self, key: str) -> Path:
        kind, rest = key.split(":", 1)
        backend, params, name = rest.rsplit(":", 2)
        folder = self.root / backend / params
        return folder / name[:2] / f"{name}.json" if kind == "response" else folder / f"{kind}-{name}.json"

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            if self.ttl_s is not None and time.time() - path.stat().st_mtime > self.ttl_s:
                return None
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._outage.failed(exc)
            return None

    def put(self, key: str, value: bytes, ttl_s: float | None) -> None:
        if not self._outage.up():
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(value)
            os.replace(tmp, path)
        except OSError as exc:
            self._outage.failed(exc)

    def claim(self, key: str, ttl_s: float) -> bool:
        return True

    def release(self, key: str) -> None:
        return None


class RedisCache:
    """Values in Redis under `prefix` with a TTL; short socket timeouts so a dead Redis costs little."""

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX, socket_timeout_s: float = 1.0) -> None:
        import redis

        self.prefix = prefix
        self.url = safe_url(url)
        self._errors = (redis.RedisError, OSError)
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=socket_timeout_s,
                                           socket_timeout=socket_timeout_s)
        self._outage = Outage(f"response cache: Redis at {self.url}", 30.0, UNCACHED, log)

    def full_key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def get(self, key: str) -> bytes | None:
        if not self._outage.up():
            return None
        try:
            value = self._redis.get(self.full_key(key))
        except self._errors as exc:
            self._outage.failed(exc)
            return None
        self._outage.recovered()
        return value

    def put(self, key: str, value: bytes, ttl_s: float | None) -> None:
        if not self._outage.up():
            return
        try:
            self._redis.set(self.full_key(key), value, ex=None if ttl_s is None else max(1, int(ttl_s)))
        except self._errors as exc:
            self._outage.failed(exc)

    def claim(self, key: str, ttl_s: float) -> bool:
        if not self._outage.up():
            return True
        try:
            return bool(self._redis.set(self.full_key(f"inflight:{key}"), b"1", nx=True,
                                        px=max(1, int(ttl_s * 1000))))
        except self._errors as exc:
            self._outage.failed(exc)
            return True

    def release(self, key: str) -> None:
        try:
            self._redis.delete(self.full_key(f"inflight:{key}"))
        except self._errors as exc:
            self._outage.failed(exc)


def open_cache(cache: bool | str | ResponseCache | None = True, redis_url: str | None = None,
               cache_dir: str | Path | None = None, cache_prefix: str = DEFAULT_PREFIX) -> ResponseCache | None:
    """The cache a backend should use: `cache` is True/"auto", "redis", "disk", False/"off", or a cache."""
    if cache in (False, None, "off", "none"):
        return None
    if not isinstance(cache, bool | str):
        return cache
    url = redis_url or settings().redis_url
    if cache == "redis" or (cache in (True, "auto") and url):
        if not url:
            raise ValueError(f"cache='redis' needs redis_url= or {REDIS_URL_ENV}")
        return RedisCache(url, cache_prefix)
    if cache in (True, "auto", "disk"):
        return DiskCache(Path(cache_dir) if cache_dir else settings().cache_dir / "responses")
    raise ValueError(f"unknown cache setting {cache!r}; use auto, redis, disk or off")
