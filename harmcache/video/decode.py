"""Open, probe and decode videos: PyAV first, decord when PyAV cannot read the file.

Opening a video reads its packets without decoding them (`StreamIndex`): how many frames it
holds, each frame's presentation time, and the keyframes decoding can start from. Decoding then
works in chunks (`harmcache.video.chunks`), each decoded by one backend and shrunk to each decode
size as it goes (`read_chunk`), so a long video is never held in memory at once. The probe
(first, middle and last frame readable) is folded into the same pass: those frames join the
plan.

The backends, one module each: `pyav_source` (packets and first frame) with `pyav_pass` (the
decode pass), `decord_source`, and `image` for still pictures. This module picks one
(`VideoSource`, `reopen`).

Every failure becomes a `VideoError` with a reason class for the failure ledger:
missing, empty, unreadable, no_video_stream, no_frames, too_short, decode_error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from harmcache.errors import VideoError
from harmcache.types import VideoInfo
from harmcache.video.chunks import CHUNK_FRAMES, ChunkPlan, plan_chunks, probe_indices
from harmcache.video.decoded import DecodedVideo, read_chunk
from harmcache.video.decord_source import DecordSource
from harmcache.video.image import IMAGE_BACKEND, ImageSource, is_image, reopened_image
from harmcache.video.pyav_source import PyAVSource
from harmcache.video.shrink import frame_shape
from harmcache.video.stream_index import StreamIndex

log = logging.getLogger(__name__)


class VideoSource:
    """An opened video: what its packets say (`info`, `stream_index`), and decoding by chunk."""

    def __init__(self, path: str | Path, *, min_frames: int = 1, prefer: str = "pyav"):
        path = Path(path)
        if not path.exists():
            raise VideoError("missing", f"no such file: {path}")
        if path.is_dir():
            raise VideoError("unreadable", f"is a folder, not a video: {path}")
        if path.stat().st_size == 0:
            raise VideoError("empty", "the file is empty (0 bytes)")
        self.path = path
        self._source = self._open(path, prefer)
        self.info: VideoInfo = self._source.info
        self.stream_index: StreamIndex = self._source.stream_index
        if self.info.n_frames < min_frames:
            self.close()
            raise VideoError(
                "too_short", f"{self.info.n_frames} frame(s), at least {min_frames} needed"
            )

    @staticmethod
    def _open(path: Path, prefer: str):
        """The first backend that opens the file and reads its packets. Nothing is decoded yet:
        the probe frames join the first decode pass (`plan`)."""
        if is_image(path):
            return ImageSource(path)
        order = [PyAVSource, DecordSource] if prefer == "pyav" else [DecordSource]
        first_error: VideoError | None = None
        for backend in order:
            try:
                return backend(path)
            except VideoError as exc:
                first_error = first_error or exc
            except Exception as exc:  # noqa: BLE001 - decoders raise untyped runtime errors
                log.debug("%s could not read %s: %s", backend.backend, path, exc)
        raise first_error or VideoError("unreadable", "no decoder could open the file")

    @property
    def times(self) -> np.ndarray:
        return self.stream_index.times

    def close(self) -> None:
        """Close the file (a PyAV source keeps it open for its decode pass)."""
        close = getattr(self._source, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def plan(self, wanted: np.ndarray, chunk_frames: int = CHUNK_FRAMES) -> list[ChunkPlan]:
        """Decode chunks for `wanted` frames plus the probe frames."""
        union = np.union1d(np.asarray(wanted, dtype=np.int64), probe_indices(self.info.n_frames))
        return plan_chunks(union, self.stream_index, chunk_frames)

    def frames(self, chunk: ChunkPlan) -> Iterator[tuple[int, np.ndarray]]:
        """(index, RGB frame at full size) for every frame of the chunk, in order."""
        return self._source.frames(chunk)

    def read_chunk(
        self, chunk: ChunkPlan, sides: dict[int | None, np.ndarray]
    ) -> dict[int | None, DecodedVideo]:
        return read_chunk(self._source, self.info, chunk, sides)

    def _shape(self, side: int | None) -> tuple[int, int]:
        return frame_shape(self.info, side)

    def read(self, indices: np.ndarray, *, max_short_side: int | None = None) -> np.ndarray:
        """Decode frames (RGB uint8, N×H×W×3); shrink so the short side is ≤ max_short_side."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size == 0:
            return np.zeros((0, *self._shape(max_short_side), 3), dtype=np.uint8)
        return self.decode(indices, max_short_side=max_short_side).take(indices)

    def decode(
        self,
        indices: np.ndarray,
        *,
        max_short_side: int | None = None,
        chunk_frames: int = CHUNK_FRAMES,
    ) -> DecodedVideo:
        """The frames at `indices` (sorted unique), probe included, all held at once."""
        unique = np.unique(np.asarray(indices, dtype=np.int64))
        frames = np.empty((len(unique), *self._shape(max_short_side), 3), dtype=np.uint8)
        for chunk in self.plan(unique, chunk_frames):
            lo, hi = np.searchsorted(unique, [chunk.indices[0], chunk.indices[-1] + 1])
            out = {max_short_side: frames[lo:hi]}
            read_chunk(self._source, self.info, chunk, {max_short_side: unique}, out)
        return DecodedVideo(self.info, unique, frames, self.times)


def reopen(path: str | Path, info: VideoInfo):
    """A source that decodes chunks of a video opened before (in another process): the
    packets are not read again, the chunk plan and `info` carry what they said."""
    if info.backend == IMAGE_BACKEND:
        return reopened_image(path)
    if info.backend == "pyav":
        return PyAVSource.reopened(path)
    return DecordSource.reopened(path, info)
