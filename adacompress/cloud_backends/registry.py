"""Backends by name, so `--backend rekognition` is a lookup, not an if-chain.

A spec is `name` or `name:variant` (`local:lite0`); the variant is passed to the factory.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from adacompress.cloud_backends.base import VisionBackend
from adacompress.errors import AdaCompressError

BackendFactory = Callable[..., VisionBackend]
_FACTORIES: dict[str, BackendFactory] = {}
# Modules imported on first lookup so that `import adacompress` does not import boto3 and friends.
_BUILTIN_MODULES = {
    "local": "adacompress.cloud_backends.local",
    "rekognition": "adacompress.cloud_backends.rekognition",
    "baidu": "adacompress.cloud_backends.baidu",
    "facepp": "adacompress.cloud_backends.facepp",
    "google": "adacompress.cloud_backends.google",
}


class UnknownBackend(AdaCompressError, KeyError):
    code = "unknown_backend"

    def __str__(self) -> str:
        return str(self.args[0])


def register_backend(name: str) -> Callable[[BackendFactory], BackendFactory]:
    """Decorator: make `factory(variant=..., **options)` available as `name`."""

    def decorate(factory: BackendFactory) -> BackendFactory:
        _FACTORIES[name] = factory
        return factory

    return decorate


def backend_names() -> list[str]:
    return sorted(set(_FACTORIES) | set(_BUILTIN_MODULES))


def create_backend(spec: str, **options: Any) -> VisionBackend:
    """Build the backend named by `spec` (`name[:variant]`) with keyword options."""
    name, _, variant = spec.partition(":")
    if name not in _FACTORIES and name in _BUILTIN_MODULES:
        try:
            importlib.import_module(_BUILTIN_MODULES[name])
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("adacompress"):
                raise UnknownBackend(f"backend {name!r} is not built in this release") from exc
            raise
    if name not in _FACTORIES:
        raise UnknownBackend(f"unknown backend {spec!r}; known: {', '.join(backend_names())}")
    if variant:
        options["variant"] = variant
    return _FACTORIES[name](**options)
