"""Typed settings: every environment variable, its default, its override, and a typed error for a bad value."""

from __future__ import annotations

import inspect
import os
from dataclasses import fields
from pathlib import Path

import platformdirs
import pytest

from adacompress.config import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_SIDE_PX,
    DEFAULT_MAX_UPLOAD_BYTES,
    Settings,
    SettingsError,
    endpoint_override,
    secret,
    settings,
)
from adacompress.errors import AdaCompressError

VARIABLES = ["ADACOMPRESS_CACHE_DIR", "ADACOMPRESS_REDIS_URL", "ADACOMPRESS_PRETRAINED_DIR",
             "ADACOMPRESS_ONNX_THREADS", "ADACOMPRESS_ONNX_SPINNING", "ADACOMPRESS_MAX_UPLOAD_BYTES",
             "ADACOMPRESS_MAX_PIXELS", "ADACOMPRESS_MAX_SIDE_PX", "BAIDU_QPS", "AWS_REGION",
             "ADACOMPRESS_ALLOW_INSECURE_ENDPOINTS", "ADACOMPRESS_CACHE_EPOCH", "ADACOMPRESS_REDIS_PREFIX"]


def test_defaults():
    defaults = settings(env={})
    assert defaults == Settings(
        cache_dir=Path(platformdirs.user_cache_dir("adacompress")), redis_url=None, pretrained_dir=None,
        onnx_threads=min(2, os.cpu_count() or 1), onnx_spinning=False, max_upload_bytes=20 * 1024 * 1024,
        max_pixels=32_000_000, max_side_px=16_384, baidu_qps=None, aws_region=None,
        allow_insecure_endpoints=False, cache_epoch="0",
    )
    assert (DEFAULT_MAX_UPLOAD_BYTES, DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE_PX) == (20 << 20, 32_000_000, 16_384)


def test_blank_values_mean_the_default():
    assert settings(env={name: "  " for name in VARIABLES}) == settings(env={})


def test_every_field_documents_its_variable():
    source = inspect.getsource(Settings)
    assert len(fields(Settings)) == len(VARIABLES)
    for name in VARIABLES:
        assert f'"""`{name}`:' in source, name


@pytest.mark.parametrize("name, raw, field, expected", [
    ("ADACOMPRESS_CACHE_DIR", "/tmp/graphs", "cache_dir", Path("/tmp/graphs")),
    ("ADACOMPRESS_REDIS_URL", "redis://127.0.0.1:6379/3", "redis_url", "redis://127.0.0.1:6379/3"),
    ("ADACOMPRESS_PRETRAINED_DIR", "agents", "pretrained_dir", Path("agents")),
    ("ADACOMPRESS_ONNX_THREADS", "7", "onnx_threads", 7),
    ("ADACOMPRESS_ONNX_THREADS", " 1 ", "onnx_threads", 1),
    ("ADACOMPRESS_ONNX_SPINNING", "1", "onnx_spinning", True),
    ("ADACOMPRESS_ONNX_SPINNING", "Yes", "onnx_spinning", True),
    ("ADACOMPRESS_ONNX_SPINNING", "on", "onnx_spinning", True),
    ("ADACOMPRESS_ONNX_SPINNING", "false", "onnx_spinning", False),
    ("ADACOMPRESS_ONNX_SPINNING", "0", "onnx_spinning", False),
    ("ADACOMPRESS_MAX_UPLOAD_BYTES", "1048576", "max_upload_bytes", 1_048_576),
    ("ADACOMPRESS_MAX_PIXELS", "1000", "max_pixels", 1000),
    ("ADACOMPRESS_MAX_SIDE_PX", "4096", "max_side_px", 4096),
    ("BAIDU_QPS", "2.5", "baidu_qps", 2.5),
    ("AWS_REGION", "eu-west-1", "aws_region", "eu-west-1"),
    ("ADACOMPRESS_ALLOW_INSECURE_ENDPOINTS", "1", "allow_insecure_endpoints", True),
    ("ADACOMPRESS_CACHE_EPOCH", " 2026-07 ", "cache_epoch", "2026-07"),
])
def test_each_override(name, raw, field, expected):
    configured = settings(env={name: raw})
    assert getattr(configured, field) == expected
    others = {f.name for f in fields(Settings)} - {field}
    assert all(getattr(configured, f) == getattr(settings(env={}), f) for f in others)


@pytest.mark.parametrize("name, raw, match", [
    ("ADACOMPRESS_ONNX_THREADS", "abc", r"^ADACOMPRESS_ONNX_THREADS='abc' is not a whole number$"),
    ("ADACOMPRESS_ONNX_THREADS", "0", r"^ADACOMPRESS_ONNX_THREADS='0' must be positive$"),
    ("ADACOMPRESS_ONNX_THREADS", "-2", r"^ADACOMPRESS_ONNX_THREADS='-2' must be positive$"),
    ("ADACOMPRESS_ONNX_THREADS", "1.5", r"^ADACOMPRESS_ONNX_THREADS='1.5' is not a whole number$"),
    ("ADACOMPRESS_ONNX_SPINNING", "maybe", r"^ADACOMPRESS_ONNX_SPINNING='maybe': use 1/0, true/false"),
    ("ADACOMPRESS_MAX_UPLOAD_BYTES", "20MB", r"^ADACOMPRESS_MAX_UPLOAD_BYTES='20MB' is not a whole number$"),
    ("ADACOMPRESS_MAX_PIXELS", "0", r"^ADACOMPRESS_MAX_PIXELS='0' must be positive$"),
    ("ADACOMPRESS_MAX_SIDE_PX", "wide", r"^ADACOMPRESS_MAX_SIDE_PX='wide' is not a whole number$"),
    ("BAIDU_QPS", "fast", r"^BAIDU_QPS='fast' is not a number$"),
    ("BAIDU_QPS", "0", r"^BAIDU_QPS='0' must be positive$"),
    ("ADACOMPRESS_ALLOW_INSECURE_ENDPOINTS", "sure", r"^ADACOMPRESS_ALLOW_INSECURE_ENDPOINTS='sure': use 1/0"),
])
def test_bad_values_name_the_variable(name, raw, match):
    with pytest.raises(SettingsError, match=match) as caught:
        settings(env={name: raw})
    assert isinstance(caught.value, AdaCompressError) and caught.value.code == "bad_setting"


def test_os_environ_is_read_when_asked_not_at_import(monkeypatch, tmp_path):
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert settings() == settings(env={})
    monkeypatch.setenv("ADACOMPRESS_ONNX_THREADS", "3")
    monkeypatch.setenv("ADACOMPRESS_PRETRAINED_DIR", str(tmp_path))
    assert settings().onnx_threads == 3 and settings().pretrained_dir == tmp_path
    monkeypatch.setenv("ADACOMPRESS_ONNX_THREADS", "abc")
    with pytest.raises(SettingsError, match="ADACOMPRESS_ONNX_THREADS"):
        settings()


def test_secrets_and_endpoints_come_from_the_environment_but_not_into_settings(monkeypatch):
    monkeypatch.setenv("REKOGNITION_ENDPOINT", " http://127.0.0.1:9000 ")
    monkeypatch.setenv("BAIDU_SECRET_KEY", "s3cr3t-value")
    monkeypatch.setenv("EMPTY_SECRET", "   ")
    monkeypatch.delenv("MISSING_SECRET", raising=False)
    assert endpoint_override("REKOGNITION_ENDPOINT") == "http://127.0.0.1:9000"
    assert secret("BAIDU_SECRET_KEY") == "s3cr3t-value"
    assert secret("EMPTY_SECRET") is None and secret("MISSING_SECRET") is None
    assert "s3cr3t-value" not in repr(settings())
