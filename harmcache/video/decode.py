"""Open, probe and decode videos: decord first, PyAV when decord cannot read the file.

Every failure becomes a `VideoError` with a reason class for the failure ledger:
missing, empty, unreadable, no_video_stream, no_frames, too_short, decode_error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harmcache.errors import VideoError
from harmcache.types import VideoInfo

log = logging.getLogger(__name__)


@dataclass
class DecodedVideo:
    """The union of frames all extractors asked for, decoded once (RGB uint8, N×H×W×3)."""

    info: VideoInfo
    indices: np.ndarray
    frames: np.ndarray

    def take(self, wanted: np.ndarray) -> np.ndarray:
        """Frames for `wanted` indices (any order, repeats allowed), from the decoded union."""
        wanted = np.asarray(wanted, dtype=np.int64)
        pos = np.searchsorted(self.indices, wanted)
        if wanted.size and (
            pos.max() >= len(self.indices) or not np.all(self.indices[pos] == wanted)
        ):
            raise KeyError("frame indices were not decoded; the frame plan missed them")
        return self.frames[pos]


class _DecordSource:
    backend = "decord"

    def __init__(self, path: Path):
        import decord

        self._vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        n = len(self._vr)
        if n <= 0:
            raise VideoError("no_frames", "the video stream holds no frames")
        height, width = self._vr[0].shape[:2]
        fps = float(self._vr.get_avg_fps() or 0.0)
        self.info = VideoInfo(
            n, fps, n / fps if fps > 0 else 0.0, int(width), int(height), "decord"
        )

    def read(self, indices: np.ndarray) -> np.ndarray:
        return self._vr.get_batch([int(i) for i in indices]).asnumpy()


class _PyAVSource:
    backend = "pyav"

    def __init__(self, path: Path):
        import av

        try:
            container = av.open(str(path))
        except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            raise VideoError("unreadable", f"cannot open the container ({exc})") from None
        with container:
            if not container.streams.video:
                raise VideoError("no_video_stream", "the file has no video stream")
            stream = container.streams.video[0]
            try:
                n = sum(1 for p in container.demux(stream) if p.size > 0)
            except av.error.FFmpegError as exc:
                raise VideoError("unreadable", f"cannot demux the video stream ({exc})") from None
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 0.0
            width, height = stream.codec_context.width, stream.codec_context.height
        if n <= 0:
            raise VideoError("no_frames", "the video stream holds no frames")
        self._path = path
        self.info = VideoInfo(n, fps, n / fps if fps > 0 else 0.0, int(width), int(height), "pyav")

    def read(self, indices: np.ndarray) -> np.ndarray:
        """Decode sequentially (no seeking), so frame k is always the k-th decoded frame."""
        import av

        wanted = {int(i) for i in indices}
        last = max(wanted)
        got: dict[int, np.ndarray] = {}
        k = -1
        with av.open(str(self._path)) as container:
            try:
                for k, frame in enumerate(container.decode(video=0)):
                    if k in wanted:
                        got[k] = frame.to_ndarray(format="rgb24")
                    if k >= last:
                        break
            except av.error.FFmpegError as exc:
                raise VideoError("decode_error", f"decode error at frame {k + 1} ({exc})") from None
        missing = sorted(wanted - got.keys())
        if missing:
            raise VideoError("decode_error", f"decode error at frame {missing[0]} (stream ended)")
        return np.stack([got[int(i)] for i in indices])


class VideoSource:
    """An opened, probed video. `read` decodes frames by index with the backend that probed it."""

    def __init__(self, path: str | Path, *, min_frames: int = 1, prefer: str = "decord"):
        path = Path(path)
        if not path.exists():
            raise VideoError("missing", f"no such file: {path}")
        if path.is_dir():
            raise VideoError("unreadable", f"is a folder, not a video: {path}")
        if path.stat().st_size == 0:
            raise VideoError("empty", "the file is empty (0 bytes)")
        self.path = path
        self._source, self._probed = self._open(path, prefer)
        self.info: VideoInfo = self._source.info
        if self.info.n_frames < min_frames:
            raise VideoError(
                "too_short", f"{self.info.n_frames} frame(s), at least {min_frames} needed"
            )

    @staticmethod
    def _open(path: Path, prefer: str):
        """(source, probed): the first backend that opens the file. decord must decode the
        probe frames now, because it accepts some files whose later frames it cannot decode
        and PyAV must then take over. PyAV decodes sequentially, so reaching the last frame
        costs a full decode: its probe joins the first real read instead of doubling it."""
        order = [_DecordSource, _PyAVSource] if prefer == "decord" else [_PyAVSource]
        first_error: VideoError | None = None
        for backend in order:
            try:
                source = backend(path)
                if backend is _PyAVSource:
                    return source, False
                source.read(probe_indices(source.info.n_frames))
                return source, True
            except VideoError as exc:
                first_error = first_error or exc
            except Exception as exc:  # noqa: BLE001 - decoders raise untyped runtime errors
                log.debug("%s could not read %s: %s", backend.backend, path, exc)
        raise first_error or VideoError("unreadable", "no decoder could open the file")

    def read(self, indices: np.ndarray, *, max_short_side: int | None = None) -> np.ndarray:
        """Decode frames (RGB uint8, N×H×W×3); shrink so the short side is ≤ max_short_side."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size == 0:
            return np.zeros((0, self.info.height, self.info.width, 3), dtype=np.uint8)
        try:
            if self._probed:
                frames = self._source.read(indices)
            else:
                wanted = np.union1d(indices, probe_indices(self.info.n_frames))
                frames = self._source.read(wanted)[np.searchsorted(wanted, indices)]
                self._probed = True
        except VideoError:
            raise
        except Exception as exc:  # noqa: BLE001 - decoder libraries raise untyped errors
            raise VideoError("decode_error", f"decode error reading frames ({exc})") from None
        return shrink_short_side(frames, max_short_side)

    def decode(self, indices: np.ndarray, *, max_short_side: int | None = None) -> DecodedVideo:
        unique = np.unique(np.asarray(indices, dtype=np.int64))
        return DecodedVideo(self.info, unique, self.read(unique, max_short_side=max_short_side))


def probe_indices(n_frames: int) -> np.ndarray:
    """First, middle and last frame: each must decode for a video to count as readable."""
    return np.unique(np.array([0, n_frames // 2, n_frames - 1], dtype=np.int64))


def shrink_short_side(frames: np.ndarray, max_short_side: int | None) -> np.ndarray:
    """Area-downscale so the short side is at most `max_short_side`; never upscales.

    Done once at decode time so that decoded 1080p frames do not fill memory; the size is part
    of every extractor's fingerprint."""
    if not max_short_side or frames.size == 0:
        return frames
    h, w = frames.shape[1:3]
    short = min(h, w)
    if short <= max_short_side:
        return frames
    import cv2

    scale = max_short_side / short
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
