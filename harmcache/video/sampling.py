"""Which frames each extractor needs. Pure index arithmetic, no decoding."""

from __future__ import annotations

import numpy as np


def uniform_indices(n_frames: int, count: int) -> np.ndarray:
    """`count` frames spread uniformly over the whole video: the centre of each of `count` equal
    segments. A video shorter than `count` frames gives all of its frames."""
    if n_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    if n_frames <= count:
        return np.arange(n_frames, dtype=np.int64)
    centres = (np.arange(count, dtype=np.float64) + 0.5) * n_frames / count
    return np.minimum(np.floor(centres).astype(np.int64), n_frames - 1)


def window_indices(n_frames: int, n_windows: int, length: int = 32, stride: int = 2) -> np.ndarray:
    """(n_windows, length) frame indices: `length` frames at `stride` around uniformly spaced
    centres, clamped to the video (short videos repeat their edge frames)."""
    centres = uniform_indices(n_frames, n_windows)
    offsets = (np.arange(length, dtype=np.int64) - length // 2) * stride
    return np.clip(centres[:, None] + offsets[None, :], 0, max(n_frames - 1, 0))


def timestamps(indices: np.ndarray, fps: float) -> np.ndarray:
    """Seconds on the video's own time axis for each frame index."""
    return np.asarray(indices, dtype=np.float64) / (fps if fps > 0 else 1.0)
