"""Frame sampling shared by the per-frame extractors (CLIP, YOLO): a count spread uniformly
over the video, or a fixed time density."""

from __future__ import annotations

from typing import Any

import numpy as np

from harmcache.types import VideoInfo
from harmcache.video.image import IMAGE_BACKEND
from harmcache.video.sampling import fps_indices, uniform_indices


def frame_sampling_options(settings: Any) -> dict[str, Any]:
    """The spec's sampling keys. The uniform ones are exactly what they always were, so default
    fingerprints never change; time-dense sampling uses its own keys."""
    if settings.fps is None:
        return {"frames": settings.frames, "sampling": "uniform"}
    return {"fps": float(settings.fps), "sampling": "fps-pts"}


def sampled_frames(settings: Any, info: VideoInfo, times: np.ndarray) -> np.ndarray:
    """(L,) frame indices in time order; a still image is one row, whatever the settings."""
    if info.backend == IMAGE_BACKEND:
        return np.zeros(1, dtype=np.int64)
    if settings.fps is None:
        return uniform_indices(info.n_frames, settings.frames)
    return fps_indices(times, settings.fps)
