"""Fixtures for the cloud backends: a real fake server per provider on loopback, a clean environment.

Nothing of ours is mocked: clients speak real HTTP to the fakes in `adacompress.cloud_backends.fakes`,
which compute labels with the local CNN.
"""

from __future__ import annotations

import io
import socket
import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import redis
from PIL import Image

from adacompress.cloud_backends.base import VisionBackend
from adacompress.cloud_backends.fakes import FakeServer, make_fake
from adacompress.cloud_backends.registry import create_backend
from adacompress.cnn import shared_model

PROVIDERS = ("rekognition", "baidu", "facepp", "google")
CLEARED_ENV = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_REKOGNITION",
    "BAIDU_API_KEY", "BAIDU_SECRET_KEY", "BAIDU_ENDPOINT", "FACEPP_API_KEY", "FACEPP_API_SECRET",
    "FACEPP_ENDPOINT", "GOOGLE_VISION_API_KEY", "GOOGLE_VISION_ENDPOINT", "ADACOMPRESS_REDIS_URL",
    "ADACOMPRESS_ALLOW_INSECURE_ENDPOINTS", "ADACOMPRESS_CACHE_EPOCH", "BAIDU_QPS",
)
REDIS_URL = "redis://127.0.0.1:6379/0"


class Images:
    """Small generated test images (never files from the shared data folder)."""

    @staticmethod
    def textured(seed: int = 0, size: tuple[int, int] = (160, 120)) -> Image.Image:
        """A colour gradient with noise: compresses like a photo, and seed 0 gets confident labels."""
        width, height = size
        rng = np.random.default_rng(seed)
        ramp = np.linspace(0, 255, width)[None, :, None] * np.array([1.0, 0.6, 0.3]) + 40 * seed % 90
        pixels = ramp + rng.normal(0, 12, (height, width, 3))
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))

    @staticmethod
    def encode(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **options)
        return buffer.getvalue()

    def jpeg(self, seed: int = 0, size: tuple[int, int] = (160, 120), quality: int = 85) -> bytes:
        return self.encode(self.textured(seed, size), "JPEG", quality=quality)


@pytest.fixture(scope="session")
def images() -> Images:
    return Images()


@pytest.fixture(scope="session", autouse=True)
def _model_loaded() -> None:
    """Load the fakes' CNN before any test points ADACOMPRESS_CACHE_DIR at a temporary folder."""
    shared_model("lite0")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No real credentials, profiles or instance metadata; caches under the test's temporary folder."""
    for var in CLEARED_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config-absent"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials-absent"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("ADACOMPRESS_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def fake_options() -> dict:
    """Keyword options of the fake server; tests override this fixture to configure it."""
    return {}


@pytest.fixture
def fake(provider: str, fake_options: dict, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    """The provider's fake API, started, with the client's environment pointing at it."""
    server = make_fake(provider, **fake_options).start()
    for name, value in server.env().items():
        monkeypatch.setenv(name, value)
    yield server
    server.stop()


@pytest.fixture
def make_backend(provider: str, fake: FakeServer) -> Iterator[Callable[..., VisionBackend]]:
    """`make_backend(**options)`: the provider's full stack from the registry, against the fake.

    Test defaults: no cache, no client QPS limit, short backoff, every label (generated textures
    are not photos, so their labels are not confident); each test overrides what it checks.
    """
    made: list[VisionBackend] = []

    def make(**options) -> VisionBackend:
        options = {"cache": "off", "qps": None, "base_delay_s": 0.01, "deadline_s": 10.0, "min_score": 0.0,
                   **options}
        backend = create_backend(provider, **options)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of our own on the shared Redis; only keys under it are deleted afterwards."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {REDIS_URL}")
    prefix = f"adacompress-test:{uuid.uuid4().hex}:"
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on right now, for a fake that must come back on the same port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
