"""Decoded frames of one video (`DecodedVideo`) and the step that fills them: one chunk decoded,
turned upright and shrunk to each decode size as its frames arrive (`read_chunk`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harmcache.errors import VideoError
from harmcache.types import VideoInfo
from harmcache.video.chunks import ChunkPlan
from harmcache.video.display import Display
from harmcache.video.shrink import frame_shape, shrink_into
from harmcache.video.stream_index import constant_rate_times


@dataclass
class DecodedVideo:
    """Decoded frames of one video (RGB uint8, N×H×W×3) at sorted unique `indices`: the union
    all extractors asked for, or one chunk of it."""

    info: VideoInfo
    indices: np.ndarray
    frames: np.ndarray
    times: np.ndarray | None = None
    """Presentation time (seconds) of every frame of the video, not only the decoded ones;
    None means index / fps."""

    def take(self, wanted: np.ndarray) -> np.ndarray:
        """Frames for `wanted` indices (any order, repeats allowed), from the decoded union."""
        wanted = np.asarray(wanted, dtype=np.int64)
        pos = np.searchsorted(self.indices, wanted)
        if wanted.size and (
            pos.max() >= len(self.indices) or not np.all(self.indices[pos] == wanted)
        ):
            raise KeyError("frame indices were not decoded; the frame plan missed them")
        return self.frames[pos]

    @property
    def frame_times(self) -> np.ndarray:
        """Every frame's presentation time in seconds (`times`, or index / fps)."""
        if self.times is not None:
            return self.times
        return constant_rate_times(self.info.n_frames, self.info.fps)


def read_chunk(
    source,
    info: VideoInfo,
    chunk: ChunkPlan,
    sides: dict[int | None, np.ndarray],
    out: dict[int | None, np.ndarray] | None = None,
) -> dict[int | None, DecodedVideo]:
    """Decode one chunk; for each short-side limit, its wanted frames (sorted unique) that fall
    in the chunk, shrunk to that limit as they are decoded straight into `out[side]` (or a new
    array), so full-size frames are never held together and nothing is copied twice.

    `source` is any decode backend (`frames(chunk)` giving coded frames); the display is
    applied here alone."""
    keep = {side: np.intersect1d(idx, chunk.indices) for side, idx in sides.items()}
    display = Display.parse(info.display)
    turn = None if display.identity else display.apply
    frames = {}
    for side, idx in keep.items():
        if out is not None and side in out:
            frames[side] = out[side]
        else:
            frames[side] = np.empty((len(idx), *frame_shape(info, side), 3), dtype=np.uint8)
    try:
        for index, rgb in source.frames(chunk):
            if turn is not None:
                rgb = turn(rgb)
            for side, idx in keep.items():
                pos = int(np.searchsorted(idx, index))
                if pos < len(idx) and idx[pos] == index:
                    shrink_into(rgb, side, frames[side][pos])
    except VideoError:
        raise
    except Exception as exc:  # noqa: BLE001 - decoder libraries raise untyped errors
        raise VideoError("decode_error", f"decode error reading frames ({exc})") from None
    return {side: DecodedVideo(info, idx, frames[side]) for side, idx in keep.items()}
