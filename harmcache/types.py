"""The plain data types every layer shares. A leaf: it imports nothing from harmcache.

`VideoInfo` is what probing learned about a video, `FeatureRecord` one extractor's features of
one video on the video's time axis, and `VideoFeatures` the two together with the video's id and
source path: one video's entry in a shard, as written and as read back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class VideoInfo:
    """What probing learned about a video; stored with its features."""

    n_frames: int
    fps: float
    duration: float
    width: int
    height: int
    backend: str
    """The decoder that read it (decord or pyav): the two can give different frames."""
    display: str = ""
    """What was applied to the coded frames to show them as a viewer sees them
    (`harmcache.video.display`): `upright` for nothing, e.g. `rotate_cw=90` for a portrait phone
    video; empty for videos cached before orientation was recorded. `width` and `height` are
    the displayed size."""

    @property
    def decoded_by(self) -> str:
        """The decoder and the display transform: what the index records and `cache info` counts
        per family (a bare decoder name: cached before orientation was recorded)."""
        return f"{self.backend} {self.display}" if self.display else self.backend

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FeatureRecord:
    """One video's features from one extractor, aligned to the video's time axis."""

    features: np.ndarray
    """(L, D) float32: one row per sampled frame or per window."""
    frame_index: np.ndarray
    """(L,) int64: the frame each row describes (a window's centre frame)."""
    timestamp: np.ndarray
    """(L,) float64 seconds."""
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    """Extractor-specific arrays, e.g. YOLO's raw detections or SlowFast's window frames."""


@dataclass
class VideoFeatures:
    """One video's features from one family, with what probing learned about the video."""

    video_id: str
    info: VideoInfo
    source_path: str
    record: FeatureRecord
