"""Shared fixtures: where the real photos live, tiny generated images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data; skips the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real photos not available: {path} is absent (outside this workplace)")
    return path


@pytest.fixture
def rgb_image(tmp_path: Path):
    """Factory: write a random RGB image of the given size and format, return its path."""

    def make(name: str = "img.png", size: tuple[int, int] = (40, 30), seed: int = 0) -> Path:
        rng = np.random.default_rng(seed)
        arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        path = tmp_path / name
        Image.fromarray(arr).save(path)
        return path

    return make
