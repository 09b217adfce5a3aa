"""Opening a video with PyAV (`PyAVSource`): the packets are read once, without decoding, for
the stream index and the video's info; the first frame is decoded on the way for its display
matrix. The container stays open, and the decode pass (`harmcache.video.pyav_pass`) goes on
from where the probe left it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from harmcache.errors import VideoError
from harmcache.types import VideoInfo
from harmcache.video.chunks import ChunkPlan
from harmcache.video.display import Display
from harmcache.video.pyav_pass import DecodePass, open_container
from harmcache.video.sampling import video_duration
from harmcache.video.stream_index import StreamIndex

HOLD_BYTES = 32 << 20
"""A video whose packets fit in this many bytes keeps them from the probe, and its decode pass
replays them: the file is not opened and read a second time."""


class PyAVSource:
    """A video read with PyAV. The container opened to read the packets stays open, and every
    chunk decoded through this source goes on in one pass (`DecodePass`)."""

    backend = "pyav"

    def __init__(self, path: Path):
        import av

        container = open_container(path)
        try:
            if not container.streams.video:
                raise VideoError("no_video_stream", "the file has no video stream")
            stream = container.streams.video[0]
            pts, keys, held = [], [], []
            size = 0
            first = FirstFrame(stream.codec_context)
            try:
                for p in container.demux(stream):
                    if p.size > 0:
                        first.feed(p)
                        if not p.is_discard:  # an edit list's lead-in: decoded, never shown
                            pts.append(p.pts)
                            keys.append(p.is_keyframe)
                        size += p.size
                        held.append(p)
                        if size > HOLD_BYTES:
                            held.clear()
            except av.error.FFmpegError as exc:
                raise VideoError("unreadable", f"cannot demux the video stream ({exc})") from None
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 0.0
            coded = stream.codec_context.width, stream.codec_context.height
            display = Display.from_matrix(first.matrix(), stream.sample_aspect_ratio)
            time_base = stream.time_base
            n = len(pts)
            if n <= 0:
                raise VideoError("no_frames", "the video stream holds no frames")
        except BaseException:
            container.close()
            raise
        self._path = path
        self.stream_index = StreamIndex.from_packets(pts, keys, time_base, fps)
        width, height = display.size(*coded)
        duration = video_duration(self.stream_index.times)
        self.info = VideoInfo(n, fps, duration, width, height, "pyav", display.label)
        held = held if size <= HOLD_BYTES else None
        self._pass = DecodePass(path, container, held, first.resume() if held is not None else None)

    @classmethod
    def reopened(cls, path: str | Path) -> PyAVSource:
        """A source for chunks of a video probed before: the file is opened at the first chunk."""
        source = cls.__new__(cls)
        source._path = Path(path)
        source._pass = DecodePass(source._path)
        return source

    def frames(self, chunk: ChunkPlan) -> Iterator[tuple[int, np.ndarray]]:
        """(index, RGB frame) for every frame of the chunk, in order. Frames are matched by
        presentation timestamp (or counted from the start when the stream has none)."""
        return self._pass.frames(chunk)

    def close(self) -> None:
        self._pass.close()


class FirstFrame:
    """The display matrix rides on decoded frames only: the probe decodes the first frame (fed
    the packets as they are demuxed) to read it. The decoder is left where it stands, so the
    decode pass over the held packets goes on from there instead of decoding them again."""

    MAX_PACKETS = 32
    """Packets fed before giving up (a decoder's reorder delay is a few frames)."""

    def __init__(self, codec):
        self.codec = codec
        self.frame = None
        self.frames: list = []
        """Every frame the decoder gave for the packets fed."""
        self.fed = 0
        self.last_pts: int | None = None
        self.failed = False

    def feed(self, packet) -> None:
        import av

        if self.frame is not None or self.fed >= self.MAX_PACKETS:
            return
        self.fed += 1
        if packet.pts is not None:
            self.last_pts = packet.pts if self.last_pts is None else max(self.last_pts, packet.pts)
        try:
            if not self.codec.is_open:
                self.codec.thread_count = 1  # decode workers are the parallelism
            frames = self.codec.decode(packet)
        except (av.error.FFmpegError, ValueError):
            self.fed = self.MAX_PACKETS  # a damaged start: the probe frames will say so
            self.failed = True
            frames = []
        self.frames += frames
        if frames:
            self.frame = frames[0]

    def resume(self) -> tuple[list, int, int | None] | None:
        """(frames decoded, packets fed, their last timestamp) for a decode pass to go on from,
        or None when the decoder failed and must start again."""
        return None if self.failed else (self.frames, self.fed, self.last_pts)

    def matrix(self):
        """FFmpeg's display matrix of the first frame (nine int32), or None."""
        if self.frame is None:
            return None
        for side in self.frame.side_data:
            if getattr(side.type, "name", "") == "DISPLAYMATRIX":
                return np.frombuffer(bytes(side), dtype="<i4")[:9]
        return None
