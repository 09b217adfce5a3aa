"""The unit of extraction work and the decode steps that run ahead of the models.

Decoding a video is two kinds of task, both run in worker processes (or Ray CPU tasks):
`probe_job` opens the video, reads its packets and plans the decode chunks (the union of the
frames its pending extractors need, plus the probe frames); `decode_chunk` decodes one chunk.
`decode_job` does both for a whole video in one process. The model step that consumes the chunks
is `harmcache.extract.per_video.extract_video`.

Each step is a per-video guard: whatever goes wrong with one video (a damaged file, a decoder
bug on an odd frame size, running out of memory) becomes a `VideoError` with a reason class for
the failure ledger, and the run carries on. Reason classes added here, beside the probe's:

- `decode_error`: the decoder raised while reading frames the probe had accepted
- `oom`: out of memory while decoding
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from harmcache.errors import VideoError
from harmcache.extractors.base import ExtractSettings, get_extractor
from harmcache.types import VideoInfo
from harmcache.video.chunks import ChunkPlan
from harmcache.video.decode import VideoSource, reopen
from harmcache.video.decoded import DecodedVideo, read_chunk
from harmcache.video.shrink import frame_shape

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoJob:
    """One video that still lacks features from some extractors."""

    path: str
    video_id: str
    extractors: tuple[tuple[str, ExtractSettings], ...]
    """(extractor name, its settings) for each family this video is missing from."""


@dataclass
class VideoPlan:
    """What opening a video decided: its info, every frame's time, and the decode chunks."""

    job: VideoJob
    info: VideoInfo
    times: np.ndarray
    sides: dict[int, np.ndarray]
    """Decode short-side limit → the sorted unique frames the extractors at that size need."""
    chunks: list[ChunkPlan]

    @property
    def duration(self) -> float:
        return self.info.duration

    def chunk_job(self, i: int) -> ChunkJob:
        chunk = self.chunks[i]
        sides = {side: np.intersect1d(idx, chunk.indices) for side, idx in self.sides.items()}
        return ChunkJob(self.job, self.info, chunk, sides)


@dataclass
class ProbeResult:
    job: VideoJob
    plan: VideoPlan | None = None
    error: VideoError | None = None


@dataclass
class ChunkJob:
    """One chunk of one video, with just what a worker needs to decode it."""

    job: VideoJob
    info: VideoInfo
    chunk: ChunkPlan
    sides: dict[int, np.ndarray]


@dataclass
class ChunkResult:
    job: VideoJob
    upto: int
    """Every planned frame at or before this index has now been delivered."""
    decoded: dict[int, DecodedVideo] = field(default_factory=dict)
    error: VideoError | None = None
    decode_seconds: float = 0.0


@dataclass
class DecodeResult:
    """A video probed and, unless it was too long, decoded whole in one process (short clips
    on Ray, tests, benchmarks)."""

    job: VideoJob
    decoded: dict[int, DecodedVideo] = field(default_factory=dict)
    """Decoded frames keyed by decode short-side limit (one entry unless extractors differ);
    empty for a video planned only (see `decode_job`'s `max_chunks`)."""
    error: VideoError | None = None
    decode_seconds: float = 0.0
    plan: VideoPlan | None = None
    """What probing decided; None when the video could not be opened or planned."""

    def chunks(self) -> Iterator[ChunkResult]:
        """The video's chunks for the models: the frames held here as one chunk, or, for a
        video planned only, its chunks decoded in this process one at a time."""
        if self.decoded:
            return iter([ChunkResult(self.job, self.plan.info.n_frames - 1, self.decoded)])
        return decode_chunks(self.plan)


def exit_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """Decode-worker initializer: end this worker when the parent dies. A parent killed with
    SIGKILL cannot tell its pool to stop, and an orphaned worker would wait forever."""
    import os
    import threading

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _guard(fn: Callable[[], object], what: str):
    """Run one video's decode step; any failure becomes a VideoError."""
    try:
        return fn()
    except VideoError:
        raise
    except MemoryError:
        raise VideoError("oom", "out of memory while decoding") from None
    except Exception as exc:  # noqa: BLE001 - one video's decoder bug must not end the run
        log.debug("%s raised", what, exc_info=True)
        raise VideoError("decode_error", f"{type(exc).__name__}: {exc}") from None


def plan_video(job: VideoJob, source: VideoSource) -> VideoPlan:
    """The union of frames each decode size needs, and the chunks to decode them in."""
    wanted: dict[int, list[np.ndarray]] = {}
    chunk_frames = min(s.chunk_frames for _, s in job.extractors)
    for name, settings in job.extractors:
        planner = get_extractor(name)(settings)
        wanted.setdefault(settings.decode_short_side, []).append(
            np.asarray(planner.frame_indices(source.info, source.times)).ravel()
        )
    sides = {side: np.unique(np.concatenate(parts)) for side, parts in wanted.items()}
    union = np.unique(np.concatenate(list(sides.values())))
    return VideoPlan(job, source.info, source.times, sides, source.plan(union, chunk_frames))


def _opened(job: VideoJob) -> VideoSource:
    return _guard(lambda: VideoSource(job.path), job.path)


def probe_job(job: VideoJob) -> ProbeResult:
    """Open a video and plan its decode; a bad video becomes an error result."""
    try:
        with _opened(job) as source:
            return ProbeResult(job, _guard(lambda: plan_video(job, source), job.path))
    except VideoError as exc:
        return ProbeResult(job, None, exc)


def decode_chunk(
    task: ChunkJob, out: dict[int, np.ndarray] | None = None, source=None
) -> ChunkResult:
    """Decode one chunk of a video (into `out[side]` when given); a decode failure becomes an
    error result. `source`: the video opened already (its decode pass goes on); None opens the
    file for this chunk alone."""
    start = time.perf_counter()
    opened = None
    try:
        if source is None:
            source = opened = reopen(task.job.path, task.info)
        decoded = _guard(
            lambda: read_chunk(source, task.info, task.chunk, task.sides, out), task.job.path
        )
        return ChunkResult(task.job, task.chunk.upto, decoded, None, time.perf_counter() - start)
    except VideoError as exc:
        return ChunkResult(task.job, task.chunk.upto, {}, exc, time.perf_counter() - start)
    finally:
        if opened is not None and hasattr(opened, "close"):
            opened.close()


def decode_chunks(plan: VideoPlan) -> Iterator[ChunkResult]:
    """Every chunk of a video decoded in this process, one at a time, in one pass."""
    source = reopen(plan.job.path, plan.info)
    try:
        for i in range(len(plan.chunks)):
            yield decode_chunk(plan.chunk_job(i), source=source)
    finally:
        if hasattr(source, "close"):
            source.close()


def decode_job(job: VideoJob, *, max_chunks: int | None = None) -> DecodeResult:
    """Probe and decode a whole video in this process, every chunk held at once; a bad video
    becomes an error result, never an exception. The file is opened once: the packets read
    for the probe lead straight into one decode pass.

    A video whose plan has more than `max_chunks` chunks is planned only: its result carries
    the plan and no frames, and the model side streams it (`DecodeResult.chunks`)."""
    start = time.perf_counter()
    try:
        source = _opened(job)
    except VideoError as exc:
        return DecodeResult(job, {}, exc, time.perf_counter() - start)
    with source:
        try:
            plan = _guard(lambda: plan_video(job, source), job.path)
        except VideoError as exc:
            return DecodeResult(job, {}, exc, time.perf_counter() - start)
        if max_chunks is not None and len(plan.chunks) > max_chunks:
            return DecodeResult(job, {}, None, time.perf_counter() - start, plan)
        return _decode_planned(plan, source, start)


def _decode_planned(plan: VideoPlan, source: VideoSource, start: float) -> DecodeResult:
    # One array per size, each chunk decoded straight into its slice: no second copy.
    frames = {
        side: np.empty((len(idx), *frame_shape(plan.info, side), 3), dtype=np.uint8)
        for side, idx in plan.sides.items()
    }
    for i in range(len(plan.chunks)):
        task = plan.chunk_job(i)
        out = {}
        for side, idx in task.sides.items():
            lo = int(np.searchsorted(plan.sides[side], idx[0])) if len(idx) else 0
            out[side] = frames[side][lo : lo + len(idx)]
        chunk = decode_chunk(task, out, source)
        if chunk.error is not None:
            return DecodeResult(plan.job, {}, chunk.error, time.perf_counter() - start)
    decoded = {
        side: DecodedVideo(plan.info, idx, frames[side], plan.times)
        for side, idx in plan.sides.items()
    }
    return DecodeResult(plan.job, decoded, None, time.perf_counter() - start, plan)
