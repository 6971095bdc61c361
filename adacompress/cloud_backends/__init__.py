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
    VisionBackend,
)
from adacompress.cloud_backends.registry import backend_names, create_backend, register_backend

__all__ = [
    "AuthError", "BackendError", "BackendUnavailable", "BadImage", "Label", "QuotaExhausted",
    "Recognition", "Throttled", "VisionBackend", "backend_names", "create_backend", "register_backend",
]
