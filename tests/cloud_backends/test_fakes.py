"""The fakes' own switches that no provider test covers: a slow client uplink."""

from __future__ import annotations

import time

import httpx
import pytest

pytestmark = pytest.mark.parametrize("provider", ["google"], indirect=True)


def _upload_s(endpoint: str, body: bytes) -> float:
    started = time.monotonic()
    httpx.post(f"{endpoint}/v1/images:annotate", content=body, timeout=10.0)
    return time.monotonic() - started


def test_uplink_switch_paces_reading_the_body(provider, fake):
    """500 kB at 1 MB/s takes at least half a second; unpaced, loopback takes a few milliseconds."""
    body = b"\0" * 500_000
    unpaced_s = _upload_s(fake.endpoint, body)
    fake.faults.uplink_bytes_per_s = 1_000_000
    paced_s = _upload_s(fake.endpoint, body)
    assert paced_s >= 0.45
    assert unpaced_s < 0.25
    assert len(fake.last_request.body) == len(body), "pacing reads the whole body"
