"""Fake servers of each cloud API, for offline tests and dry runs: real HTTP on loopback, real wire formats.

The wire formats themselves live in `adacompress.cloud_backends.wire`, shared with the upload proxy.
"""

from __future__ import annotations

from typing import Any

from adacompress.cloud_backends.fakes.baidu import BaiduFake
from adacompress.cloud_backends.fakes.facepp import FaceppFake
from adacompress.cloud_backends.fakes.google import GoogleFake
from adacompress.cloud_backends.fakes.rekognition import RekognitionFake
from adacompress.cloud_backends.fakes.server import FakeLabeler, FakeServer, Faults

FAKES: dict[str, type[FakeServer]] = {
    "rekognition": RekognitionFake, "baidu": BaiduFake, "facepp": FaceppFake, "google": GoogleFake,
}


def make_fake(provider: str, **options: Any) -> FakeServer:
    """An unstarted fake for `provider` (host, port, variant, top_k, credentials as keywords)."""
    try:
        return FAKES[provider](**options)
    except KeyError:
        raise KeyError(f"no fake for {provider!r}; fakes exist for {', '.join(sorted(FAKES))}") from None


__all__ = ["FAKES", "BaiduFake", "FaceppFake", "FakeLabeler", "FakeServer", "Faults", "GoogleFake",
           "RekognitionFake", "make_fake"]
