"""Shared fixtures: real encoded videos with known frames, the command line as tests run it, the
smallest extraction flags, and a no-network environment."""

from __future__ import annotations

import os

import numpy as np
import pytest

# No test may touch the network: weights come from --random-init or files the tests write.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("HARMCACHE_OFFLINE", "1")

from harmcache.video.encode import write_video  # noqa: E402


def coded_frames(n: int, h: int = 32, w: int = 64, seed: int = 0) -> np.ndarray:
    """Frames whose top-left pixel holds their index, over a seeded random texture."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)
    frames[:, :4, :4, :] = (np.arange(n, dtype=np.uint8) * 7)[:, None, None, None]
    return frames


@pytest.fixture
def make_video(tmp_path):
    """make_video(name, n_frames=..., size=(h, w), seed=..., codec=...) -> (path, frames)."""

    def make(
        name: str,
        n_frames: int = 12,
        size=(32, 64),
        seed: int = 0,
        codec="libx264rgb",
        fps: int = 8,
    ):
        frames = coded_frames(n_frames, *size, seed=seed)
        path = write_video(tmp_path / name, frames, fps=fps, codec=codec)
        return path, frames

    return make


@pytest.fixture
def cli():
    """`cli.invoke(...)`, `cli.ok(...)`, `cli.installed(...)`, `cli.last_json(result)`: the
    command line as tests run it (tests/running.py)."""
    from tests import running

    return running


@pytest.fixture
def tiny_flags():
    """`harmcache extract` flags for the smallest real models (tests/running.py)."""
    from tests.running import TINY_FLAGS

    return list(TINY_FLAGS)
