"""Shared fixtures: real encoded videos with known frames, and a no-network environment."""

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
