"""What a video's packets say about its frames, read without decoding any (`StreamIndex`): how
many frames it holds, each frame's presentation time, and the keyframes decoding can start from.

Every decode backend gives one when it opens a file; the chunk plan (`harmcache.video.chunks`)
is cut along it. Not to be confused with a head's score timeline (`harmcache.heads.timeline`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np


def constant_rate_times(n_frames: int, fps: float) -> np.ndarray:
    """Presentation times (seconds) of `n_frames` frames at a constant `fps`."""
    return np.arange(n_frames, dtype=np.float64) / (fps if fps > 0 else 1.0)


@dataclass(frozen=True)
class StreamIndex:
    """What the packets say about a video's frames, in presentation order."""

    times: np.ndarray
    """(n,) float64 seconds since the first frame, from the presentation timestamps."""
    keyframes: np.ndarray
    """Sorted frame indices decoding can start from; always holds 0."""
    pts: np.ndarray | None
    """(n,) int64 sorted presentation timestamps (frames are matched by them), or None when the
    stream lacks usable ones: frames are then counted from the start and never sought."""

    @classmethod
    def from_packets(cls, pts: list, keys: list, time_base, fps: float) -> StreamIndex:
        """Presentation times from the packets' timestamps (`pts`, with `keys` saying which
        packets are keyframes, both in decode order), exact in rational arithmetic; index/fps
        when some packet has none or two share one."""
        n = len(pts)
        if time_base is None or any(p is None for p in pts) or len(set(pts)) != n:
            return cls(constant_rate_times(n, fps), np.zeros(1, np.int64), None)
        raw = np.asarray(pts, dtype=np.int64)
        order = np.argsort(raw, kind="stable")
        sorted_pts = raw[order]
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        keyframes = np.unique(np.concatenate([[0], rank[np.asarray(keys, dtype=bool)]]))
        tb = Fraction(time_base)
        first = int(sorted_pts[0])
        times = np.array([float((int(p) - first) * tb) for p in sorted_pts], dtype=np.float64)
        return cls(times, keyframes.astype(np.int64), sorted_pts)
