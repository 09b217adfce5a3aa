"""The decode size: frames area-downscaled so their short side is at most a limit, never
upscaled. Done once at decode time so that decoded 1080p frames do not fill memory; the size is
part of every extractor's fingerprint."""

from __future__ import annotations

import numpy as np

from harmcache.types import VideoInfo


def frame_shape(info: VideoInfo, side: int | None) -> tuple[int, int]:
    """(height, width) of a decoded frame after shrinking to `side`."""
    h, w = info.height, info.width
    if not side or min(h, w) <= side:
        return h, w
    scale = side / min(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def shrink_into(frame: np.ndarray, max_short_side: int | None, out: np.ndarray) -> None:
    """`shrink_frame` written into `out` (same pixels, no new array)."""
    h, w = frame.shape[:2]
    if not max_short_side or min(h, w) <= max_short_side:
        out[...] = frame
        return
    import cv2

    cv2.resize(frame, (out.shape[1], out.shape[0]), dst=out, interpolation=cv2.INTER_AREA)


def shrink_frame(frame: np.ndarray, max_short_side: int | None) -> np.ndarray:
    """One frame, area-downscaled so the short side is at most `max_short_side`."""
    h, w = frame.shape[:2]
    short = min(h, w)
    if not max_short_side or short <= max_short_side:
        return frame
    import cv2

    scale = max_short_side / short
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def shrink_short_side(frames: np.ndarray, max_short_side: int | None) -> np.ndarray:
    """Area-downscale so the short side is at most `max_short_side`; never upscales."""
    if not max_short_side or frames.size == 0:
        return frames
    if min(frames.shape[1:3]) <= max_short_side:
        return frames
    return np.stack([shrink_frame(f, max_short_side) for f in frames])
