"""Open, probe and decode videos: PyAV first, decord when PyAV cannot read the file.

Opening a video reads its packets without decoding them (`Timeline`): how many frames it holds,
each frame's presentation time, and the keyframes decoding can start from. Decoding then works
in chunks (`plan_chunks`): consecutive groups of pictures (GOPs) holding at most a set number of
wanted frames, so a long video is never held in memory at once. With PyAV the file stays open
and the chunks go on in one sequential pass where the wanted frames are dense (seeking costs
more than decoding through a GOP); the pass seeks only over long stretches nobody wants, and
the decoder skips the frames nobody wants that no other frame refers to. Only the frames kept
are converted to RGB. The probe (first, middle and last frame readable) is folded into the same
pass: those frames join the plan.

Every failure becomes a `VideoError` with a reason class for the failure ledger:
missing, empty, unreadable, no_video_stream, no_frames, too_short, decode_error.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from harmcache.errors import VideoError
from harmcache.types import VideoInfo
from harmcache.video.display import Display
from harmcache.video.image import IMAGE_BACKEND, ImageSource, is_image, reopened_image
from harmcache.video.sampling import video_duration

log = logging.getLogger(__name__)

CHUNK_FRAMES = 128
"""Default wanted frames per decode chunk: 128 frames of 640×360 are 88 MB."""


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
    def timeline(self) -> np.ndarray:
        """Every frame's presentation time in seconds."""
        if self.times is not None:
            return self.times
        return constant_rate_times(self.info.n_frames, self.info.fps)


def constant_rate_times(n_frames: int, fps: float) -> np.ndarray:
    return np.arange(n_frames, dtype=np.float64) / (fps if fps > 0 else 1.0)


@dataclass(frozen=True)
class Timeline:
    """What the packets say about a video's frames, in presentation order."""

    times: np.ndarray
    """(n,) float64 seconds since the first frame, from the presentation timestamps."""
    keyframes: np.ndarray
    """Sorted frame indices decoding can start from; always holds 0."""
    pts: np.ndarray | None
    """(n,) int64 sorted presentation timestamps (frames are matched by them), or None when the
    stream lacks usable ones: frames are then counted from the start and never sought."""


SEEK_GAP = 16
"""Frames nobody wants that a decode pass seeks over rather than decodes through: a seek (with
the decoder's reset) costs about as much as decoding a few frames."""

HOLD_BYTES = 32 << 20
"""A video whose packets fit in this many bytes keeps them from the probe, and its decode pass
replays them: the file is not opened and read a second time."""


@dataclass(frozen=True)
class ChunkPlan:
    """One decode pass: start at keyframe `start`, keep the frames at `indices`."""

    start: int
    indices: np.ndarray
    """Sorted unique frames kept (wanted by an extractor or by the probe)."""
    upto: int
    """Every planned frame at or before this index is in this chunk or an earlier one."""
    start_pts: int | None = None
    pts: np.ndarray | None = None
    """Presentation timestamps of `indices` (None: count frames from the start)."""
    seeks: tuple[tuple[int, int], ...] = ()
    """(position in `indices`, presentation timestamp of that frame's keyframe) wherever at
    least `SEEK_GAP` frames nobody wants come first: decoding seeks there rather than decoding
    through them. At position 0, a pass going on from the chunk before seeks too."""


def plan_chunks(wanted: np.ndarray, timeline: Timeline, max_frames: int) -> list[ChunkPlan]:
    """Split sorted unique `wanted` frames into chunks of whole GOPs holding at most
    `max_frames` of them; a GOP holding more is split, each piece decoded from its keyframe.

    Consecutive chunks end and start at GOP boundaries, so a dense plan decodes every needed
    GOP exactly once; a stretch of `SEEK_GAP` or more frames up to a keyframe that no one wants
    is sought over, so GOPs holding no wanted frame are never decoded."""
    wanted = np.unique(np.asarray(wanted, dtype=np.int64))
    if wanted.size == 0:
        return []
    keys = timeline.keyframes if timeline.pts is not None else np.zeros(1, np.int64)
    gop = np.searchsorted(keys, wanted, side="right") - 1
    chunks: list[list[tuple[int, np.ndarray]]] = []  # (keyframe, its wanted frames) per GOP
    count = 0
    for g in np.unique(gop):
        members = wanted[gop == g]
        key = int(keys[g])
        if chunks and count + len(members) <= max_frames:
            chunks[-1].append((key, members))
            count += len(members)
            continue
        for piece in range(0, len(members), max_frames):
            part = members[piece : piece + max_frames]
            chunks.append([(key, part)])
            count = len(part)
    pts = timeline.pts
    out = []
    before = None  # the last wanted frame of the GOPs planned so far
    for parts in chunks:
        seeks, position = [], 0
        for key, members in parts:
            if pts is not None and before is not None and key - before - 1 >= SEEK_GAP:
                seeks.append((position, int(pts[key])))
            position += len(members)
            before = int(members[-1])
        indices = np.concatenate([members for _, members in parts])
        start = parts[0][0]
        out.append(
            ChunkPlan(
                start=start,
                indices=indices,
                upto=int(indices[-1]),
                start_pts=int(pts[start]) if pts is not None else None,
                pts=pts[indices] if pts is not None else None,
                seeks=tuple(seeks),
            )
        )
    return out


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


class _PyAVSource:
    """A video read with PyAV. The container opened to read the packets stays open, and every
    chunk decoded through this source goes on in one pass (`_Pass`)."""

    backend = "pyav"

    def __init__(self, path: Path):
        import av

        container = _open_container(path)
        try:
            if not container.streams.video:
                raise VideoError("no_video_stream", "the file has no video stream")
            stream = container.streams.video[0]
            pts, keys, held = [], [], []
            size = 0
            first = _FirstFrame(stream.codec_context)
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
        self.timeline = _timeline(pts, keys, time_base, fps)
        width, height = display.size(*coded)
        duration = video_duration(self.timeline.times)
        self.info = VideoInfo(n, fps, duration, width, height, "pyav", display.label)
        held = held if size <= HOLD_BYTES else None
        self._pass = _Pass(path, container, held, first.resume() if held is not None else None)

    @classmethod
    def reopened(cls, path: str | Path) -> _PyAVSource:
        """A source for chunks of a video probed before: the file is opened at the first chunk."""
        source = cls.__new__(cls)
        source._path = Path(path)
        source._pass = _Pass(source._path)
        return source

    def frames(self, chunk: ChunkPlan) -> Iterator[tuple[int, np.ndarray]]:
        """(index, RGB frame) for every frame of the chunk, in order. Frames are matched by
        presentation timestamp (or counted from the start when the stream has none)."""
        return self._pass.frames(chunk)

    def close(self) -> None:
        self._pass.close()


class _FirstFrame:
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


def _open_container(path: Path):
    import av

    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoError("unreadable", f"cannot open the container ({exc})") from None


class _Pass:
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
        self.primed = primed
        """What the probe's first-frame decode left (`_FirstFrame.resume`): the first pass from
        the start goes on from it; any other start resets the decoder."""
        """Every packet of the stream in decode order, kept by the probe; None: read the file."""
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
            self.container = _open_container(self.path)
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
        self.container = _open_container(self.path)
        self._start(self.container.streams.video[0].codec_context, self._packets())

    def _replay(self, at: int) -> None:
        self.primed = None
        if self.container is None:
            self.container = _open_container(self.path)
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


def _timeline(pts: list, keys: list, time_base, fps: float) -> Timeline:
    """Presentation times from the packets' timestamps, exact in rational arithmetic; index/fps
    when some packet has none or two share one."""
    n = len(pts)
    if time_base is None or any(p is None for p in pts) or len(set(pts)) != n:
        return Timeline(constant_rate_times(n, fps), np.zeros(1, np.int64), None)
    raw = np.asarray(pts, dtype=np.int64)
    order = np.argsort(raw, kind="stable")
    sorted_pts = raw[order]
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    keyframes = np.unique(np.concatenate([[0], rank[np.asarray(keys, dtype=bool)]]))
    tb = Fraction(time_base)
    first = int(sorted_pts[0])
    times = np.array([float((int(p) - first) * tb) for p in sorted_pts], dtype=np.float64)
    return Timeline(times, keyframes.astype(np.int64), sorted_pts)


class _DecordSource:
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
        self.timeline = Timeline(
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
            first = _FirstFrame(stream.codec_context)
            for packet in container.demux(stream):
                if packet.size > 0:
                    first.feed(packet)
                    if first.frame is not None or first.fed >= first.MAX_PACKETS:
                        break
            return Display.from_matrix(first.matrix(), stream.sample_aspect_ratio)
    except Exception:  # noqa: BLE001 - any failure here means "shown as coded"
        return Display()


class VideoSource:
    """An opened video: what its packets say (`info`, `timeline`), and decoding by chunk."""

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
        self.timeline: Timeline = self._source.timeline
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
        order = [_PyAVSource, _DecordSource] if prefer == "pyav" else [_DecordSource]
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
        return self.timeline.times

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
        return plan_chunks(union, self.timeline, chunk_frames)

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
        return _PyAVSource.reopened(path)
    source = _DecordSource.__new__(_DecordSource)
    source._path = Path(path)
    source._unturn = Display.parse(info.display).quarter_turns
    return source


def read_chunk(
    source,
    info: VideoInfo,
    chunk: ChunkPlan,
    sides: dict[int | None, np.ndarray],
    out: dict[int | None, np.ndarray] | None = None,
) -> dict[int | None, DecodedVideo]:
    """Decode one chunk; for each short-side limit, its wanted frames (sorted unique) that fall
    in the chunk, shrunk to that limit as they are decoded straight into `out[side]` (or a new
    array), so full-size frames are never held together and nothing is copied twice."""
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


def frame_shape(info: VideoInfo, side: int | None) -> tuple[int, int]:
    """(height, width) of a decoded frame after shrinking to `side`."""
    h, w = info.height, info.width
    if not side or min(h, w) <= side:
        return h, w
    scale = side / min(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def probe_indices(n_frames: int) -> np.ndarray:
    """First, middle and last frame: each must decode for a video to count as readable."""
    return np.unique(np.array([0, n_frames // 2, n_frames - 1], dtype=np.int64))


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
    """Area-downscale so the short side is at most `max_short_side`; never upscales.

    Done once at decode time so that decoded 1080p frames do not fill memory; the size is part
    of every extractor's fingerprint."""
    if not max_short_side or frames.size == 0:
        return frames
    if min(frames.shape[1:3]) <= max_short_side:
        return frames
    return np.stack([shrink_frame(f, max_short_side) for f in frames])
