"""Cost accounting per backend: calls, bytes, cache hits and the estimated spend.

Providers bill answered calls, so the estimate is the requests the provider answered, including
those whose caller had already given up at its deadline, times the price per 1,000 calls.
Prices are defaults to override with `price_per_1k_usd=`; see docs/backends.md for where each
comes from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from adacompress.cloud_backends.base import VisionBackend

DEFAULT_PRICE_PER_1K_USD: dict[str, float] = {
    "rekognition": 1.00,  # DetectLabels, first 1M images/month, us-east-1 (AWS pricing page)
    "google": 1.50,  # LABEL_DETECTION, units 1,001-5M/month (secondary sources)
    "baidu": 0.35,  # assumption, unverified: ~CNY 0.0025/call, like comparable Chinese vision APIs
    "facepp": 0.35,  # assumption, unverified: same basis as baidu
    "local": 0.0,
}


@dataclass(frozen=True)
class CostReport:
    """What a backend stack has used so far."""

    backend: str
    calls: int
    """Calls that went past the cache (each may have made several attempts)."""
    attempts: int
    """Requests sent to the provider, retries included (a pre-check that refused an image sends none)."""
    billable_calls: int
    """Requests the provider answered with labels (what it bills), even after their caller gave up."""
    abandoned: int
    """Requests sent whose caller gave up at its deadline before the answer came."""
    bytes_sent: int
    """Bytes of all attempts."""
    failures: int
    cache_hits: int
    retries: int
    price_per_1k_usd: float
    estimated_usd: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def layers(backend: VisionBackend) -> list[VisionBackend]:
    """The backend and every backend it wraps, outermost first."""
    chain = [backend]
    while hasattr(chain[-1], "inner"):
        chain.append(chain[-1].inner)  # type: ignore[attr-defined]
    return chain


def cost_report(backend: VisionBackend, price_per_1k_usd: float | None = None) -> CostReport:
    """Read the counters of every layer of `backend` and price the provider's answered calls."""
    chain = layers(backend)
    top, raw = chain[0].stats.snapshot(), chain[-1].stats.snapshot()
    price = price_per_1k_usd
    if price is None:
        price = getattr(backend, "price_per_1k_usd", None)
    if price is None:
        price = DEFAULT_PRICE_PER_1K_USD.get(backend.name.split(":")[0], 0.0)
    snapshots = [layer.stats.snapshot() for layer in chain]
    billable = raw["answered"]
    return CostReport(
        backend=backend.name, calls=top["calls"], attempts=raw["sent"], billable_calls=billable,
        abandoned=raw["abandoned"], bytes_sent=raw["bytes_sent"], failures=top["failures"],
        cache_hits=sum(snap["cache_hits"] for snap in snapshots),
        retries=sum(snap["retries"] for snap in snapshots),
        price_per_1k_usd=price, estimated_usd=round(billable * price / 1000.0, 6))
