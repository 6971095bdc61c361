"""Where the service keeps shared state: Redis under one key prefix, or an embedded in-process store.

Every key the service uses is named by `Keys`, so one Redis can host several deployments (or test
runs) side by side and `docs/architecture.md` lists them in one table. `open_store()` gives a
`RedisStore` when `ADACOMPRESS_REDIS_URL` is set, else an `EmbeddedStore` that serves one process
only (and says so in the log). Both offer the same few primitives (values, hashes, a capped stream,
pub/sub), so the replay buffer and the policy registry have one code path for either.

A Redis that does not answer raises `StoreUnavailable`; callers on the request path catch it and
degrade (`Outage` paces their retries), the learner and the registry's writers let it surface.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from adacompress.config import DEFAULT_REDIS_PREFIX, settings
from adacompress.errors import AdaCompressError
from adacompress.service.events import log_event

log = logging.getLogger(__name__)

STREAM_START = "0-0"
"""A stream cursor before every entry."""
DEFAULT_TIMEOUT_S = 1.0
"""Socket timeouts for Redis: a dead Redis should cost a request little, a live one answers in well under this."""


class StoreError(AdaCompressError):
    """The store refused an operation (a wrong type under our key, a bad argument)."""

    code = "store_error"


class StoreUnavailable(StoreError):
    """The store did not answer; the caller degrades or retries later."""

    code = "store_unavailable"


@dataclass(frozen=True)
class Keys:
    """Every key and channel name the service uses, all under `prefix` (include the separator: `myapp:`)."""

    prefix: str = DEFAULT_REDIS_PREFIX

    @property
    def transitions(self) -> str:
        """Stream of serialized transitions, capped (`XADD MAXLEN ~`)."""
        return f"{self.prefix}transitions"

    def reader_cursor(self, reader: str) -> str:
        """Last stream id `reader` consumed, so a restarted learner resumes."""
        return f"{self.prefix}transitions:cursor:{reader}"

    @property
    def policy_versions(self) -> str:
        """Hash: policy version -> its metadata (JSON)."""
        return f"{self.prefix}policy:versions"

    def policy_blob(self, version: str) -> str:
        """The agent file (bytes) of one policy version."""
        return f"{self.prefix}policy:blob:{version}"

    @property
    def policy_current(self) -> str:
        """The version every replica should serve."""
        return f"{self.prefix}policy:current"

    @property
    def policy_channel(self) -> str:
        """Pub/sub channel announcing a new current version."""
        return f"{self.prefix}policy:changed"

    @property
    def daemon_state(self) -> str:
        """Hash: the daemon's mode, estimate rate and recent-accuracy window."""
        return f"{self.prefix}daemon:state"

    def daemon_replica(self, replica: str) -> str:
        """One serving process's full state (hash, expiring), so replicas never overwrite each other's."""
        return f"{self.prefix}daemon:replica:{replica}"

    def response(self, cache_key: str) -> str:
        """One cached provider answer (`cloud_backends.cache.cache_key`)."""
        return f"{self.prefix}response:{cache_key}"

    def limit(self, name: str) -> str:
        """Shared provider limit state (QPS bucket, retry budget, quota breaker) called `name`."""
        return f"{self.prefix}limits:{name}"


class Subscription(ABC):
    """Messages published on one channel after `Store.subscribe` returned."""

    @abstractmethod
    def get_message(self, timeout_s: float) -> bytes | None:
        """The next message, or None after `timeout_s` without one."""

    @abstractmethod
    def close(self) -> None: ...


class Store(ABC):
    """The primitives the service needs, on Redis or in process; `keys` names everything."""

    embedded: bool
    description: str
    """Where the data lives, for log lines and errors (never a password)."""

    def __init__(self, prefix: str) -> None:
        self.keys = Keys(prefix)

    @abstractmethod
    def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    def set(self, key: str, value: bytes) -> None: ...

    @abstractmethod
    def delete(self, *keys: str) -> None: ...

    @abstractmethod
    def hset(self, key: str, field: str, value: bytes) -> None: ...

    @abstractmethod
    def hset_many(self, key: str, mapping: dict[str, bytes], ttl_s: float | None = None) -> None:
        """Set several fields at once, so a reader never sees half of them changed; the hash expires after
        `ttl_s` unless written again (the embedded store, one process, keeps it)."""

    @abstractmethod
    def hget(self, key: str, field: str) -> bytes | None: ...

    @abstractmethod
    def hgetall(self, key: str) -> dict[str, bytes]: ...

    @abstractmethod
    def publish(self, channel: str, message: bytes) -> None: ...

    @abstractmethod
    def subscribe(self, channel: str) -> Subscription: ...

    @abstractmethod
    def append(self, stream: str, payloads: list[bytes], maxlen: int) -> list[str]:
        """Add `payloads` in order, all or none, keeping about the last `maxlen` entries; their ids."""

    @abstractmethod
    def read(self, stream: str, after: str, count: int) -> list[tuple[str, bytes]]:
        """Up to `count` (id, payload) entries after id `after`, oldest first."""

    @abstractmethod
    def length(self, stream: str) -> int: ...

    @abstractmethod
    def close(self) -> None:
        """Release connections; the embedded store keeps its data for other holders."""


PAYLOAD_FIELD = b"t"
"""The one field of a stream entry."""


class RedisStore(Store):
    """Redis (or anything speaking its protocol) at `url`; no automatic retries, so a failure is seen at once."""

    embedded = False

    def __init__(self, url: str, prefix: str = DEFAULT_REDIS_PREFIX, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        super().__init__(prefix)
        self._redis_errors = redis.RedisError
        self._down_errors = (redis.ConnectionError, redis.TimeoutError, OSError)
        # redis-py retries ten times with backoff by default: seconds on the request path, and a retried
        # XADD whose reply was lost would be stored twice.
        self.client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s,
                                           retry=Retry(NoBackoff(), 0))
        kwargs = self.client.connection_pool.connection_kwargs
        where = kwargs.get("path") or f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
        self.description = f"Redis at {where}/{kwargs.get('db', 0)}"

    @contextmanager
    def _calls(self) -> Iterator[None]:
        try:
            yield
        except self._down_errors as exc:
            raise StoreUnavailable(f"{self.description} did not answer ({type(exc).__name__}: {exc}); "
                                   "check that it is running and reachable") from exc
        except self._redis_errors as exc:
            raise StoreError(f"{self.description} refused the command ({exc}); is another program using "
                             f"keys under {self.keys.prefix!r}?") from exc

    def get(self, key: str) -> bytes | None:
        with self._calls():
            return self.client.get(key)

    def set(self, key: str, value: bytes) -> None:
        with self._calls():
            self.client.set(key, value)

    def delete(self, *keys: str) -> None:
        if keys:
            with self._calls():
                self.client.delete(*keys)

    def hset(self, key: str, field: str, value: bytes) -> None:
        with self._calls():
            self.client.hset(key, field, value)

    def hset_many(self, key: str, mapping: dict[str, bytes], ttl_s: float | None = None) -> None:
        with self._calls():
            pipeline = self.client.pipeline(transaction=True)
            pipeline.hset(key, mapping=mapping)
            if ttl_s is not None:
                pipeline.pexpire(key, max(1, round(ttl_s * 1000)))
            pipeline.execute()

    def hget(self, key: str, field: str) -> bytes | None:
        with self._calls():
            return self.client.hget(key, field)

    def hgetall(self, key: str) -> dict[str, bytes]:
        with self._calls():
            return {name.decode(): value for name, value in self.client.hgetall(key).items()}

    def publish(self, channel: str, message: bytes) -> None:
        with self._calls():
            self.client.publish(channel, message)

    def subscribe(self, channel: str) -> Subscription:
        with self._calls():
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(channel)
        return _RedisSubscription(self, pubsub)

    def append(self, stream: str, payloads: list[bytes], maxlen: int) -> list[str]:
        with self._calls():
            if len(payloads) == 1:
                ids = [self.client.xadd(stream, {PAYLOAD_FIELD: payloads[0]}, maxlen=maxlen, approximate=True)]
            else:  # MULTI/EXEC: a connection lost half way stores none of them, so a retry duplicates nothing
                pipe = self.client.pipeline(transaction=True)
                for payload in payloads:
                    pipe.xadd(stream, {PAYLOAD_FIELD: payload}, maxlen=maxlen, approximate=True)
                ids = pipe.execute()
        return [entry_id.decode() for entry_id in ids]

    def read(self, stream: str, after: str, count: int) -> list[tuple[str, bytes]]:
        with self._calls():
            answer = self.client.xread({stream: after}, count=count)
        entries = answer[0][1] if answer else []
        return [(entry_id.decode(), fields.get(PAYLOAD_FIELD, b"")) for entry_id, fields in entries]

    def length(self, stream: str) -> int:
        with self._calls():
            return int(self.client.xlen(stream))

    def close(self) -> None:
        self.client.close()


class _RedisSubscription(Subscription):
    def __init__(self, store: RedisStore, pubsub: Any) -> None:
        self._store, self._pubsub = store, pubsub

    def get_message(self, timeout_s: float) -> bytes | None:
        deadline = time.monotonic() + timeout_s
        with self._store._calls():
            while True:  # get_message returns None early for subscribe confirmations and pings
                message = self._pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
                if message is not None and message.get("type") == "message":
                    return message["data"]
                if time.monotonic() >= deadline:
                    return None

    def close(self) -> None:
        try:
            self._pubsub.close()
        except self._store._down_errors:
            pass  # the connection is already gone


@dataclass
class _Stream:
    entries: deque[tuple[int, bytes]]
    next_seq: int = 1


class EmbeddedStore(Store):
    """The same primitives in this process's memory: thread-safe, shared by whoever holds this object."""

    embedded = True
    description = "the embedded in-process store"

    def __init__(self, prefix: str = DEFAULT_REDIS_PREFIX) -> None:
        super().__init__(prefix)
        self._lock = threading.Lock()
        self._values: dict[str, bytes] = {}
        self._hashes: dict[str, dict[str, bytes]] = {}
        self._streams: dict[str, _Stream] = {}
        self._subscribers: dict[str, list[queue.SimpleQueue[bytes]]] = {}

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._values.get(key)

    def set(self, key: str, value: bytes) -> None:
        with self._lock:
            self._values[key] = bytes(value)

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._values.pop(key, None)
                self._hashes.pop(key, None)
                self._streams.pop(key, None)

    def hset(self, key: str, field: str, value: bytes) -> None:
        with self._lock:
            self._hashes.setdefault(key, {})[field] = bytes(value)

    def hset_many(self, key: str, mapping: dict[str, bytes], ttl_s: float | None = None) -> None:
        with self._lock:
            self._hashes.setdefault(key, {}).update((name, bytes(value)) for name, value in mapping.items())

    def hget(self, key: str, field: str) -> bytes | None:
        with self._lock:
            return self._hashes.get(key, {}).get(field)

    def hgetall(self, key: str) -> dict[str, bytes]:
        with self._lock:
            return dict(self._hashes.get(key, {}))

    def publish(self, channel: str, message: bytes) -> None:
        with self._lock:
            for inbox in self._subscribers.get(channel, []):
                inbox.put(bytes(message))

    def subscribe(self, channel: str) -> Subscription:
        inbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        with self._lock:
            self._subscribers.setdefault(channel, []).append(inbox)
        return _EmbeddedSubscription(self, channel, inbox)

    def _unsubscribe(self, channel: str, inbox: queue.SimpleQueue[bytes]) -> None:
        with self._lock:
            inboxes = self._subscribers.get(channel, [])
            if inbox in inboxes:
                inboxes.remove(inbox)

    def append(self, stream: str, payloads: list[bytes], maxlen: int) -> list[str]:
        with self._lock:
            state = self._streams.get(stream)
            if state is None or state.entries.maxlen != maxlen:
                state = self._streams[stream] = _Stream(deque(state.entries if state else (), maxlen=maxlen),
                                                        state.next_seq if state else 1)
            first = state.next_seq
            state.entries.extend((first + i, bytes(p)) for i, p in enumerate(payloads))
            state.next_seq += len(payloads)
        return [f"0-{seq}" for seq in range(first, first + len(payloads))]

    def read(self, stream: str, after: str, count: int) -> list[tuple[str, bytes]]:
        after_seq = _embedded_seq(after)
        with self._lock:
            state = self._streams.get(stream)
            if state is None or not state.entries:
                return []
            start = max(0, after_seq - state.entries[0][0] + 1)
            chosen = list(itertools.islice(state.entries, start, start + count))
        return [(f"0-{seq}", payload) for seq, payload in chosen]

    def length(self, stream: str) -> int:
        with self._lock:
            state = self._streams.get(stream)
            return len(state.entries) if state else 0

    def close(self) -> None:
        pass  # the data stays for other holders of this object


def _embedded_seq(entry_id: str) -> int:
    major, _, minor = entry_id.partition("-")
    try:
        if int(major) != 0:
            raise ValueError
        return int(minor or 0)
    except ValueError:
        raise StoreError(f"stream cursor {entry_id!r} does not come from the embedded store (its ids are "
                         "0-N); start from 0-0") from None


class _EmbeddedSubscription(Subscription):
    def __init__(self, store: EmbeddedStore, channel: str, inbox: queue.SimpleQueue[bytes]) -> None:
        self._store, self._channel, self._inbox = store, channel, inbox

    def get_message(self, timeout_s: float) -> bytes | None:
        try:
            return self._inbox.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._store._unsubscribe(self._channel, self._inbox)


def open_store(url: str | None = None, prefix: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> Store:
    """Redis at `url` (default `ADACOMPRESS_REDIS_URL`), else the embedded store; keys under `prefix`
    (default `ADACOMPRESS_REDIS_PREFIX`). Nothing is contacted yet: a Redis that is down at start is an
    outage like any other."""
    current = settings()
    url = url if url is not None else current.redis_url
    prefix = prefix if prefix is not None else current.redis_prefix
    if not url:
        log_event(log, logging.WARNING, "embedded_store", prefix=prefix,
                  note="ADACOMPRESS_REDIS_URL is not set: transitions, policies and limits live in this "
                       "process only; set it so several processes or replicas share them")
        return EmbeddedStore(prefix)
    return RedisStore(url, prefix, timeout_s)

