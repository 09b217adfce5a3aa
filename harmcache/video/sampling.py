"""Which frames each extractor needs. Pure index arithmetic, no decoding.

Two ways to sample: a fixed count spread over the whole video (`uniform_indices`,
`window_indices`), or a fixed time density (`fps_indices`, `tiled_window_indices`), which reads
the frames' presentation times so that variable-frame-rate videos are sampled on their real
time axis.
"""

from __future__ import annotations

import math

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


def window_offsets(length: int = 32, stride: int = 2) -> np.ndarray:
    """Offsets of a window's frames from its centre frame."""
    return (np.arange(length, dtype=np.int64) - length // 2) * stride


def windows_around(centres: np.ndarray, n_frames: int, length: int = 32, stride: int = 2):
    """(len(centres), length) frame indices around each centre, clamped to the video."""
    centres = np.asarray(centres, dtype=np.int64)
    offsets = window_offsets(length, stride)
    return np.clip(centres[:, None] + offsets[None, :], 0, max(n_frames - 1, 0))


def window_indices(n_frames: int, n_windows: int, length: int = 32, stride: int = 2) -> np.ndarray:
    """(n_windows, length) frame indices: `length` frames at `stride` around uniformly spaced
    centres, clamped to the video (short videos repeat their edge frames)."""
    return windows_around(uniform_indices(n_frames, n_windows), n_frames, length, stride)


def video_duration(times: np.ndarray) -> float:
    """Seconds from the first frame's start to the last frame's end: the last presentation time
    plus the typical frame duration (the median gap, robust to a variable frame rate)."""
    times = np.asarray(times, dtype=np.float64)
    if times.size == 0:
        return 0.0
    if times.size == 1:
        return 0.0
    return float(times[-1] - times[0] + np.median(np.diff(times)))


def frames_at(times: np.ndarray, instants: np.ndarray) -> np.ndarray:
    """The frame on screen at each instant: the last frame whose presentation time is at or
    before it (the first frame for instants before the video starts)."""
    times = np.asarray(times, dtype=np.float64)
    idx = np.searchsorted(times, np.asarray(instants, dtype=np.float64), side="right") - 1
    return np.clip(idx, 0, max(len(times) - 1, 0)).astype(np.int64)


def tiled_instants(duration: float, every: float) -> np.ndarray:
    """The centres of consecutive `every`-second segments tiling [0, duration): one per
    segment, the last one possibly partial; at least one for any video."""
    count = max(1, math.ceil(duration / every - 1e-9))
    return (np.arange(count, dtype=np.float64) + 0.5) * every


def fps_indices(times: np.ndarray, fps: float) -> np.ndarray:
    """One frame every 1/fps seconds over the whole video: the frame on screen at the centre of
    each 1/fps-second segment. `times` are the frames' presentation times in seconds (sorted);
    consecutive segments may share a frame when the video's own rate is below `fps`."""
    times = np.asarray(times, dtype=np.float64)
    if times.size == 0:
        return np.zeros(0, dtype=np.int64)
    instants = times[0] + tiled_instants(video_duration(times), 1.0 / fps)
    return frames_at(times, instants)


def tiled_window_indices(
    times: np.ndarray, every: float, length: int = 32, stride: int = 2
) -> np.ndarray:
    """(windows, length) frame indices: one window per `every`-second segment of the video,
    centred on the frame on screen at the segment's centre, clamped to the video."""
    times = np.asarray(times, dtype=np.float64)
    if times.size == 0:
        return np.zeros((0, length), dtype=np.int64)
    centres = frames_at(times, times[0] + tiled_instants(video_duration(times), every))
    return windows_around(centres, len(times), length, stride)


def timestamps(indices: np.ndarray, fps: float) -> np.ndarray:
    """Seconds on the video's own time axis for each frame index, at a constant frame rate
    (used only when the stream gives no presentation times)."""
    return np.asarray(indices, dtype=np.float64) / (fps if fps > 0 else 1.0)
