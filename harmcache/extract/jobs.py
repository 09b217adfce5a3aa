"""The unit of extraction work and the decode step that runs ahead of the models.

`decode_job` runs in worker processes (or Ray CPU tasks): it probes the video, works out the
union of frames its pending extractors need, and decodes them once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harmcache.errors import VideoError
from harmcache.extractors.base import Extractor, ExtractSettings, get_extractor
from harmcache.store.shard import ShardItem
from harmcache.video.decode import DecodedVideo, VideoSource


@dataclass(frozen=True)
class VideoJob:
    """One video that still lacks features from some extractors."""

    path: str
    video_id: str
    extractors: tuple[tuple[str, ExtractSettings], ...]
    """(extractor name, its settings) for each family this video is missing from."""


@dataclass
class DecodeResult:
    job: VideoJob
    decoded: dict[int, DecodedVideo] = field(default_factory=dict)
    """Decoded frames keyed by decode short-side limit (one entry unless extractors differ)."""
    error: VideoError | None = None
    decode_seconds: float = 0.0


def exit_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """Decode-worker initializer: end this worker when the parent dies. A parent killed with
    SIGKILL cannot tell its pool to stop, and an orphaned worker would wait forever."""
    import os
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def decode_job(job: VideoJob) -> DecodeResult:
    """Probe and decode one video; a bad video becomes an error result, never an exception."""
    import time

    start = time.perf_counter()
    try:
        source = VideoSource(job.path)
        wanted: dict[int, list[np.ndarray]] = {}
        for name, settings in job.extractors:
            planner = get_extractor(name)(settings)
            wanted.setdefault(settings.decode_short_side, []).append(
                np.asarray(planner.frame_indices(source.info)).ravel()
            )
        decoded = {
            side: source.decode(np.concatenate(parts), max_short_side=side)
            for side, parts in wanted.items()
        }
        return DecodeResult(job, decoded, None, time.perf_counter() - start)
    except VideoError as exc:
        return DecodeResult(job, {}, exc, time.perf_counter() - start)


def extract_item(result: DecodeResult, extractor: Extractor) -> ShardItem:
    """One extractor on one decoded video, ready for a shard. Both engines call this, so the
    same video gets the same features whichever engine ran it."""
    video = result.decoded[extractor.settings.decode_short_side]
    return ShardItem(result.job.video_id, video.info, result.job.path, extractor.extract(video))
