"""Shared fixtures: generated images, the bundled photos, the ImageNet sample beside the repo, real backends.

Everything here is real: the CNN runs on onnxruntime and images go through Pillow's codecs.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adacompress.agents.agent_file import AgentFile
from adacompress.agents.screen import PREFIX, Screen
from adacompress.cloud_backends.local import LocalBackend
from adacompress.demo_images import demo_photos
from adacompress.features import Featurizer

REPO_ROOT = Path(__file__).resolve().parents[1]
IMAGENET_SAMPLE = REPO_ROOT.parent / "shared" / "data" / "imagenet-sample"
"""1000 real ImageNet photos, one per class; sorted by name, the index is the class index. Never copied."""


def encode_bytes(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def with_screen(agent: AgentFile, screen: Screen | None) -> AgentFile:
    """`agent` with `screen` in place of its own (None: without any)."""
    arrays = {k: v for k, v in agent.weights().items() if not k.startswith(PREFIX)}
    if screen is not None:
        arrays.update(screen.arrays())
    return replace(agent, weights_npz=AgentFile.pack_weights(arrays))


def constant_screen(probability: float) -> Screen:
    """A screen that says `probability` for every photo (all input weights zero)."""
    bias = np.log(probability / (1 - probability))
    return Screen(np.array([0.0] * 10 + [bias]), np.zeros(10), np.ones(10))


def textured(seed: int = 0, size: tuple[int, int] = (128, 96)) -> Image.Image:
    """A horizontal gradient with Gaussian noise: compresses like a photo, not like a flat colour."""
    width, height = size
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, width)[None, :, None] * np.array([1.0, 0.6, 0.3]) + 40 * seed % 90
    pixels = ramp + rng.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@pytest.fixture(scope="session")
def encode_as() -> Callable[..., bytes]:
    """`encode_as(image, "JPEG", quality=90) -> bytes`, via Pillow."""
    return encode_bytes


@pytest.fixture
def textured_image() -> Image.Image:
    return textured()


@pytest.fixture
def generated_images() -> list[Image.Image]:
    """Five distinct textured images of different sizes."""
    return [textured(seed, (96 + 16 * seed, 72 + 8 * seed)) for seed in range(5)]


@pytest.fixture
def image_folder(tmp_path: Path, generated_images: list[Image.Image]) -> Path:
    """A folder of generated images saved as JPEG and PNG."""
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(generated_images):
        image.save(folder / f"img{i}.{'png' if i % 2 else 'jpg'}")
    return folder


@pytest.fixture(scope="session")
def photos() -> list[Image.Image]:
    """The real photos bundled with scikit-image and matplotlib (astronaut, coffee, chelsea, ...)."""
    return demo_photos()


@pytest.fixture(scope="session")
def imagenet_files() -> list[Path]:
    """The ImageNet sample in ../shared beside the repository, sorted so that index = class index."""
    if not IMAGENET_SAMPLE.is_dir():
        pytest.skip(f"ImageNet sample not found at {IMAGENET_SAMPLE}")
    files = sorted(IMAGENET_SAMPLE.glob("*.JPEG"))
    assert len(files) == 1000, f"expected one photo per ImageNet class in {IMAGENET_SAMPLE}"
    return files


@pytest.fixture(scope="session")
def imagenet_subset(imagenet_files: list[Path]) -> list[tuple[int, Path]]:
    """40 evenly spaced (class index, path) pairs."""
    return [(i, imagenet_files[i]) for i in range(0, 1000, 25)]


@pytest.fixture
def lite0_backend() -> LocalBackend:
    """A fresh local backend on EfficientNet-Lite0 (fresh counters; the onnxruntime session is shared)."""
    return LocalBackend("lite0")


@pytest.fixture(scope="session")
def featurizer() -> Featurizer:
    return Featurizer()
