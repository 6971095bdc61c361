"""An httpx transport whose every socket operation ends by the current call's deadline.

httpx timeouts bound each socket operation, not the request: a server that drips its answer a
byte at a time resets the read timeout with every byte and holds the call as long as it likes.
This network backend caps every connect, TLS handshake, read and write at the time left in the
`deadline_scope`, so the whole request (headers and body) ends by the deadline whatever the
server does; past it, the next operation raises a timeout and httpcore drops the connection.
"""

from __future__ import annotations

from typing import Any

import httpcore
import httpx

from adacompress.cloud_backends.deadline import remaining_s

WRITE_CHUNK_BYTES = 64 * 1024
"""Uploads are written in chunks so a server that stops reading cannot hold one write past the deadline."""


def _capped(timeout: float | None, error: type[Exception]) -> float | None:
    """`timeout` shortened to the deadline's remaining time; `error` once none is left."""
    left = remaining_s()
    if left is None:
        return timeout
    if left <= 0:
        raise error("the call's deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _capped(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        for start in range(0, len(buffer), WRITE_CHUNK_BYTES):
            self._inner.write(buffer[start:start + WRITE_CHUNK_BYTES], _capped(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        capped = _capped(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, capped))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineNetwork(httpcore.NetworkBackend):
    """httpcore's blocking sockets, with every operation capped by the deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        capped = _capped(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_tcp(host, port, capped, local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        capped = _capped(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, capped, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def deadline_transport() -> httpx.HTTPTransport:
    """httpx's own transport (its error mapping and pooling) over `DeadlineNetwork`.

    httpx takes no network backend, so its pool is swapped for an httpcore pool built with one;
    `test_a_dripping_server_cannot_hold_a_call_past_its_deadline` fails if an httpx release moves it.
    """
    transport = httpx.HTTPTransport()
    transport._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(), max_connections=100,
                                              max_keepalive_connections=20, keepalive_expiry=5.0,
                                              network_backend=DeadlineNetwork())
    return transport
