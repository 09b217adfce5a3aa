"""Opening and decoding a video with decord (`DecordSource`): the fallback for files PyAV cannot
read through. decord seeks by frame index itself, so its stream index counts frames."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from harmcache.errors import VideoError
from harmcache.types import VideoInfo
from harmcache.video.chunks import ChunkPlan
from harmcache.video.display import Display
from harmcache.video.pyav_source import FirstFrame
from harmcache.video.sampling import video_duration
from harmcache.video.stream_index import StreamIndex, constant_rate_times


class DecordSource:
    """A video read with decord; frames come out as coded (`read_chunk` applies the display)."""

    backend = "decord"

    def __init__(self, path: Path):
        import decord

        self._path = path
        self._vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        n = len(self._vr)
        if n <= 0:
            raise VideoError("no_frames", "the video stream holds no frames")
        height, width = self._vr[0].shape[:2]
        fps = float(self._vr.get_avg_fps() or 0.0)
        starts = np.asarray(self._vr.get_frame_timestamp(np.arange(n)), dtype=np.float64)[:, 0]
        keys = np.asarray(self._vr.get_key_indices(), dtype=np.int64)
        times = starts - starts[0]
        if np.any(np.diff(times) <= 0):
            times = constant_rate_times(n, fps)
        # decord seeks by index itself: frame "timestamps" are the indices.
        self.stream_index = StreamIndex(
            times, np.unique(np.concatenate([[0], keys])), np.arange(n, dtype=np.int64)
        )
        # decord turns frames by the display rotation itself; `frames` turns them back, so that
        # every source gives coded frames and `read_chunk` alone applies the display.
        display = _display_of(path)
        self._unturn = display.quarter_turns
        if self._unturn % 2:
            width, height = height, width
        width, height = display.size(int(width), int(height))
        duration = video_duration(times)
        self.info = VideoInfo(n, fps, duration, width, height, "decord", display.label)

    @classmethod
    def reopened(cls, path: str | Path, info: VideoInfo) -> DecordSource:
        """A source for chunks of a video probed before: the file is opened at the first chunk,
        and `info` says how its frames are turned."""
        source = cls.__new__(cls)
        source._path = Path(path)
        source._unturn = Display.parse(info.display).quarter_turns
        return source

    def frames(self, chunk: ChunkPlan) -> Iterator[tuple[int, np.ndarray]]:
        if not hasattr(self, "_vr"):
            import decord

            self._vr = decord.VideoReader(str(self._path), ctx=decord.cpu(0), num_threads=1)
        for start in range(0, len(chunk.indices), 16):  # bounds the full-size frames held
            part = chunk.indices[start : start + 16]
            frames = self._vr.get_batch([int(i) for i in part]).asnumpy()
            for index, frame in zip(part.tolist(), frames):
                yield index, np.rot90(frame, self._unturn) if self._unturn else frame


def _display_of(path: Path) -> Display:
    """The display of a file decord opened (PyAV could not read it through): the first frame's
    display matrix and the aspect ratio where PyAV gets that far, else the coded picture."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            first = FirstFrame(stream.codec_context)
            for packet in container.demux(stream):
                if packet.size > 0:
                    first.feed(packet)
                    if first.frame is not None or first.fed >= first.MAX_PACKETS:
                        break
            return Display.from_matrix(first.matrix(), stream.sample_aspect_ratio)
    except Exception:  # noqa: BLE001 - any failure here means "shown as coded"
        return Display()
