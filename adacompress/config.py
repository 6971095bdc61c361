"""Typed settings: every environment variable adacompress reads, with its default, in one place.

Settings are read when asked for (`settings()`), not at import, so a test or a worker process that
changes the environment sees the change. Credentials are read here too (`secret`), but never kept
in a `Settings` object, so printing settings cannot leak them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from adacompress.errors import AdaCompressError

PREFIX = "ADACOMPRESS_"
DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_PIXELS = 32_000_000
"""Fits 12 MP phone photos and 24-30 MP camera photos (6000x4000, 6720x4480); a 48 MP PNG of a few KB took
950 MB of peak memory in `eval`, so larger images need `ADACOMPRESS_MAX_PIXELS` raised on purpose."""
DEFAULT_MAX_SIDE_PX = 16_384
DEFAULT_REDIS_PREFIX = "adacompress:"


class SettingsError(AdaCompressError, ValueError):
    """An environment variable holds a value of the wrong kind."""

    code = "bad_setting"


@dataclass(frozen=True)
class Settings:
    """What the environment says; every field names its variable."""

    cache_dir: Path
    """`ADACOMPRESS_CACHE_DIR`: built ONNX graphs and the on-disk response cache (default: the user cache dir)."""
    redis_url: str | None
    """`ADACOMPRESS_REDIS_URL`: Redis for the response cache and the service (default: none, embedded store)."""
    pretrained_dir: Path | None
    """`ADACOMPRESS_PRETRAINED_DIR`: a folder of agents to use instead of the ones shipped in the package."""
    onnx_threads: int
    """`ADACOMPRESS_ONNX_THREADS`: onnxruntime threads per session (default: min(2, cores)); size it so
    workers x threads does not exceed the cores."""
    onnx_spinning: bool
    """`ADACOMPRESS_ONNX_SPINNING`: let onnxruntime threads spin between runs (default off: spinning threads
    of several processes on shared cores slowed a probe fourfold)."""
    max_upload_bytes: int
    """`ADACOMPRESS_MAX_UPLOAD_BYTES`: largest accepted upload (default 20 MiB)."""
    max_pixels: int
    """`ADACOMPRESS_MAX_PIXELS`: largest accepted width x height, checked from the header before any pixel is
    decoded (default 32 M: a 30 MP camera photo passes, a 48 MP one or a decompression bomb does not)."""
    max_side_px: int
    """`ADACOMPRESS_MAX_SIDE_PX`: largest accepted width or height (default 16384)."""
    baidu_qps: float | None
    """`BAIDU_QPS`: the Baidu account's QPS quota (default: the free tier's)."""
    aws_region: str | None
    """`AWS_REGION`: used when the AWS profile names no region."""
    allow_insecure_endpoints: bool
    """`ADACOMPRESS_ALLOW_INSECURE_ENDPOINTS`: let a provider endpoint be plain `http://` off loopback (default off:
    keys and images would cross the network in clear text)."""
    cache_epoch: str
    """`ADACOMPRESS_CACHE_EPOCH`: part of every response-cache key; change it to retire all cached answers, e.g. when
    a provider without a model version field changes its model (default "0")."""
    redis_prefix: str = DEFAULT_REDIS_PREFIX
    """`ADACOMPRESS_REDIS_PREFIX`: the prefix of every Redis key and channel the service uses, so deployments can
    share one Redis (default "adacompress:"; keys are listed in docs/architecture.md)."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if value <= 0:
        raise SettingsError(f"{name}={raw!r} must be positive")
    return value


def _float(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise SettingsError(f"{name}={raw!r} must be positive")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r}: use 1/0, true/false, yes/no or on/off")


def settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings the environment (or `env`) gives, defaults filled in."""
    env = os.environ if env is None else env
    cache = env.get(PREFIX + "CACHE_DIR", "").strip()
    pretrained = env.get(PREFIX + "PRETRAINED_DIR", "").strip()
    return Settings(
        cache_dir=Path(cache) if cache else Path(platformdirs.user_cache_dir("adacompress")),
        redis_url=env.get(PREFIX + "REDIS_URL", "").strip() or None,
        pretrained_dir=Path(pretrained) if pretrained else None,
        onnx_threads=_int(env, PREFIX + "ONNX_THREADS", min(2, os.cpu_count() or 1)),
        onnx_spinning=_bool(env, PREFIX + "ONNX_SPINNING", False),
        max_upload_bytes=_int(env, PREFIX + "MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES),
        max_pixels=_int(env, PREFIX + "MAX_PIXELS", DEFAULT_MAX_PIXELS),
        max_side_px=_int(env, PREFIX + "MAX_SIDE_PX", DEFAULT_MAX_SIDE_PX),
        baidu_qps=_float(env, "BAIDU_QPS"),
        aws_region=env.get("AWS_REGION", "").strip() or None,
        allow_insecure_endpoints=_bool(env, PREFIX + "ALLOW_INSECURE_ENDPOINTS", False),
        cache_epoch=env.get(PREFIX + "CACHE_EPOCH", "").strip() or "0",
        redis_prefix=env.get(PREFIX + "REDIS_PREFIX", "").strip() or DEFAULT_REDIS_PREFIX,
    )


def endpoint_override(var: str) -> str | None:
    """A provider endpoint from the environment (`REKOGNITION_ENDPOINT`, ...), e.g. a loopback fake."""
    return os.environ.get(var, "").strip() or None


def secret(var: str) -> str | None:
    """A credential from the environment, or None; callers register it for log redaction."""
    return os.environ.get(var, "").strip() or None
