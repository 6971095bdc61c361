"""One interface over cloud vision APIs and the local stand-in."""

from adacompress.cloud_backends.base import (
    AuthError,
    BackendError,
    BackendUnavailable,
    BadImage,
    Label,
    QuotaExhausted,
    Recognition,
    Throttled,
    UnexpectedAnswer,
    VisionBackend,
)
from adacompress.cloud_backends.breaker import CircuitOpen, DailyQuotaExhausted
from adacompress.cloud_backends.cache import CachedBackend
from adacompress.cloud_backends.cost import CostReport, cost_report
from adacompress.cloud_backends.deadline import DeadlineExceeded
from adacompress.cloud_backends.endpoints import InsecureEndpoint
from adacompress.cloud_backends.registry import backend_names, create_backend, register_backend
from adacompress.cloud_backends.retry import ResilientBackend, RetryPolicy

__all__ = [
    "AuthError", "BackendError", "BackendUnavailable", "BadImage", "CachedBackend", "CircuitOpen", "CostReport",
    "DailyQuotaExhausted", "DeadlineExceeded", "InsecureEndpoint", "Label", "QuotaExhausted", "Recognition",
    "ResilientBackend", "RetryPolicy", "Throttled", "UnexpectedAnswer", "VisionBackend", "backend_names",
    "create_backend", "cost_report", "register_backend",
]
