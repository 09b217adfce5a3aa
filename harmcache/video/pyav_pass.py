"""One decode pass through a video with PyAV (`DecodePass`): where decoding stands in one open
container, and the frames it gives for each chunk of the plan.

With PyAV the file stays open and the chunks go on in one sequential pass where the wanted
frames are dense (seeking costs more than decoding through a GOP); the pass seeks only over
long stretches nobody wants, and the decoder skips the frames nobody wants that no other frame
refers to. Only the frames kept are converted to RGB.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harmcache.errors import VideoError
from harmcache.video.chunks import ChunkPlan


def open_container(path: Path):
    import av

    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoError("unreadable", f"cannot open the container ({exc})") from None


def _keep_frame_memory() -> None:
    """Keep freed frame-sized buffers in this process's heap (glibc). Every frame converted to
    RGB gets a new full-size buffer; by default glibc hands it back to the system when it is
    freed and the next frame faults fresh pages in, which at 720p adds about a quarter to the
    decoding time. Up to 64 MB of freed heap may stay reserved. No effect but with glibc."""
    global _heap_tuned
    if _heap_tuned:
        return
    _heap_tuned = True
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: buffers below 32 MB (a 4K RGB frame) in the heap
    mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD: keep up to 64 MB free at the heap's top


_heap_tuned = False


def _rgb_options() -> dict:
    """`to_ndarray` options: RGB, converted on this thread. PyAV 17 and later convert on every
    core unless told otherwise; the decode workers are the parallelism. Same pixels either way."""
    import av

    major = int(av.__version__.split(".")[0])
    return {"format": "rgb24", "threads": 1} if major >= 17 else {"format": "rgb24"}


class DecodePass:
    """Where decoding stands in one open container.

    A chunk goes on from where the chunk before left the decoder when its frames lie ahead, so
    a dense plan is decoded in one sequential pass, probe frames included; otherwise the pass
    starts again at the chunk's keyframe. Within a chunk it seeks over long stretches nobody
    wants (`ChunkPlan.seeks`). A packet whose frame nobody wants goes to the decoder marked
    skippable: the decoder drops it when no other frame refers to it (a B-frame) and decodes it
    otherwise, so the frames kept are exactly those of a full decode."""

    def __init__(self, path: Path, container=None, held: list | None = None, primed=None):
        self.path = path
        self.container = container
        self.held = held
        """Every packet of the stream in decode order, kept by the probe; None: read the file."""
        self.primed = primed
        """What the probe's first-frame decode left (`FirstFrame.resume`): the first pass from
        the start goes on from it; any other start resets the decoder."""
        self.decoded: Iterator | None = None
        """The decoder's frames from the current position on; None: not positioned."""
        self.can_seek = True
        """False once a seek landed past its keyframe (MPEG-TS, MPEG-PS): read through instead."""
        self.feed = _Feed()
        self.count = 0
        """Frames the decoder gave since the pass was positioned."""
        self.done: int | None = None
        """The key (timestamp, or count) of the last frame the decoder gave."""

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
        self.container = self.decoded = self.held = None

    def frames(self, chunk: ChunkPlan) -> Iterator[tuple[int, np.ndarray]]:
        import av

        by_pts = chunk.pts is not None
        keys = (chunk.pts if by_pts else chunk.indices).tolist()
        index_of = dict(zip(keys, chunk.indices.tolist()))
        seeks = list(chunk.seeks)
        if seeks and seeks[0][0] == 0:
            keyframe = seeks.pop(0)[1]
            if self.can_seek and (self.feed.sent is None or keyframe > self.feed.sent):
                self.decoded = None  # a long stretch nobody wants: start at the keyframe
        if self.decoded is None or self.done is None or keys[0] <= self.done:
            self._position(chunk)
        self.feed.want, self.feed.last = (set(keys) if by_pts else set()), keys[-1]
        rgb = _rgb_options()
        got = 0
        try:
            while got < len(keys):
                if seeks and got == seeks[0][0]:
                    keyframe = seeks.pop(0)[1]
                    if self.can_seek and (self.feed.sent is None or keyframe > self.feed.sent):
                        self._seek(keyframe)
                frame = next(self.decoded, None)
                if frame is None:
                    break
                key = frame.pts if by_pts else self.count
                self.count += 1
                if key is None:
                    continue
                self.done = key
                index = index_of.pop(key, None)
                if index is not None:
                    yield index, frame.to_ndarray(**rgb)
                    got += 1
                elif key > keys[-1]:
                    break
        except av.error.FFmpegError as exc:
            self.decoded = None
            message = f"decode error at frame {self.count} ({exc})"
            raise VideoError("decode_error", message) from None
        except Exception:
            self.decoded = None
            raise
        if got < len(keys):
            self.decoded = None
            missing = min(index_of.values())
            raise VideoError("decode_error", f"decode error at frame {missing} (stream ended)")

    def _position(self, chunk: ChunkPlan) -> None:
        """Start the pass at the chunk's keyframe, the decoder reset."""
        if chunk.start > 0 and chunk.start_pts is not None:
            self._seek(chunk.start_pts)
        else:
            self._from_start()

    def _seek(self, keyframe_pts: int) -> None:
        """Go to the keyframe with this timestamp (or, where seeking is not exact, to the start),
        the decoder reset."""
        if self.held is not None:
            at = next((i for i, p in enumerate(self.held) if p.pts == keyframe_pts), None)
            if at is not None:
                self._replay(at)
                return
            self.held = None
        if self.container is None:
            self.container = open_container(self.path)
        if self.can_seek:
            stream = self.container.streams.video[0]
            self.container.seek(keyframe_pts, stream=stream, backward=True)  # resets the decoder
            packets = self._packets()
            first = next(packets, None)
            if first is not None and first.is_keyframe and first.pts is not None:
                if first.pts <= keyframe_pts:
                    self._start(stream.codec_context, itertools.chain([first], packets))
                    return
            self.can_seek = False
        self._from_start()

    def _from_start(self) -> None:
        if self.held is not None and self.primed is not None:
            frames, fed, last_pts = self.primed
            self.primed = None
            codec = self.container.streams.video[0].codec_context
            self._start(codec, iter(self.held[fed:]), ready=frames)
            self.feed.sent = last_pts
            return
        if self.held is not None:
            self._replay(0)
            return
        if self.container is not None:  # read before: open it again rather than seek to 0
            self.container.close()
        self.container = open_container(self.path)
        self._start(self.container.streams.video[0].codec_context, self._packets())

    def _replay(self, at: int) -> None:
        self.primed = None
        if self.container is None:
            self.container = open_container(self.path)
        codec = self.container.streams.video[0].codec_context
        codec.flush_buffers()
        self._start(codec, iter(self.held[at:]))

    def _packets(self) -> Iterator:
        stream = self.container.streams.video[0]
        return (p for p in self.container.demux(stream) if p.size > 0)

    def _start(self, codec, packets: Iterator, ready: list = ()) -> None:
        _keep_frame_memory()
        if not codec.is_open:
            codec.thread_count = 1  # decode workers are the parallelism
        self.count, self.done, self.feed.sent = 0, None, None
        self.decoded = itertools.chain(ready, _decoder_frames(codec, packets, self.feed))


@dataclass
class _Feed:
    """Which frames the packets being sent are for: those at `want` timestamps, up to `last`."""

    want: set[int] = field(default_factory=set)
    last: int | None = None
    sent: int | None = None
    """The largest timestamp sent since the pass was positioned."""

    def skippable(self, pts: int | None) -> bool:
        """Nobody wants this packet's frame: the chunk being decoded wants the frames up to
        `last` at `want`, and every later chunk only frames after `last`."""
        if pts is None:
            return False
        if self.sent is None or pts > self.sent:
            self.sent = pts
        return bool(self.want) and pts <= self.last and pts not in self.want


def _decoder_frames(codec, packets: Iterator, feed: _Feed) -> Iterator:
    """Every frame the decoder gives for `packets`, then for its flush at their end."""
    skipping = False
    codec.skip_frame = "DEFAULT"
    for packet in packets:
        skip = feed.skippable(packet.pts)
        if skip != skipping:
            codec.skip_frame = "NONREF" if skip else "DEFAULT"
            skipping = skip
        yield from codec.decode(packet)
    codec.skip_frame = "DEFAULT"
    yield from codec.decode(None)
