"""Fixtures for agent tests: a small folder of real photos from the bundled demo set."""

from __future__ import annotations

from pathlib import Path

import pytest

from adacompress.demo_images import demo_image_set


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight bundled photos and crops, written as PNG so the only JPEG coding is ours."""
    folder = tmp_path_factory.mktemp("photos")
    images = demo_image_set()
    for i in range(0, 24, 3):
        images.load(i).save(folder / f"photo_{i:02d}.png")
    return folder
