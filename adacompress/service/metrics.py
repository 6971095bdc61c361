"""The proxy's Prometheus metrics, all named `adacompress_*`, in a registry of their own per app."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ProxyMetrics:
    """Counters, gauges and histograms the proxy updates per request; `render()` is the /metrics body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.uploads = Counter("adacompress_uploads", "Requests served, by route and mode (inference, estimate)",
                               ["route", "mode"], registry=r)
        self.bytes_in = Counter("adacompress_bytes_in", "Bytes received from clients", registry=r)
        self.bytes_sent = Counter("adacompress_bytes_sent", "Bytes sent upstream for the served answers "
                                  "(estimates' reference uploads not included)", registry=r)
        self.bytes_saved = Counter("adacompress_bytes_saved", "Reference bytes minus bytes sent", registry=r)
        self.estimate_bytes = Counter("adacompress_estimate_bytes", "Reference bytes uploaded by estimates",
                                      registry=r)
        self.errors = Counter("adacompress_errors", "Requests answered with an error, by code", ["code"], registry=r)
        self.rejected = Counter("adacompress_rejected", "Requests refused because the queue was full", registry=r)
        self.backend_seconds = Histogram("adacompress_backend_seconds", "Time to the served answer from upstream",
                                         buckets=LATENCY_BUCKETS_S, registry=r)
        self.early_exits = Counter("adacompress_early_exits", "Decisions the screen ended after two of the probe's "
                                   "five passes (the cheapest rung sent)", registry=r)
        self.decide_seconds = Histogram("adacompress_decide_seconds", "Time in decide() (decode, probe, encode)",
                                        buckets=LATENCY_BUCKETS_S, registry=r)
        self.request_seconds = Histogram("adacompress_request_seconds", "Whole request, body read to answer",
                                         buckets=LATENCY_BUCKETS_S, registry=r)
        self.queue_depth = Gauge("adacompress_queue_depth", "Requests admitted and not yet answered", registry=r)
        self.p_est = Gauge("adacompress_p_est", "The daemon's base estimate rate", registry=r)
        self.estimated_share = Gauge("adacompress_estimate_rate", "Recent share of requests estimated", registry=r)
        self.size_weight = Gauge("adacompress_size_weight", "The accuracy dial (known-cost head's size weight)",
                                 registry=r)
        self.estimated_accuracy = Gauge("adacompress_estimated_accuracy",
                                        "Estimated share of served answers that keep the reference's", registry=r)
        self.policy = Gauge("adacompress_policy_info", "The policy version served (value 1)", ["version"],
                            registry=r)
        self.cache_hits = Gauge("adacompress_cache_hits", "Upstream answers taken from the response cache",
                                registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
