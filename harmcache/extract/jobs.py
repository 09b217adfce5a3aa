"""The unit of extraction work and the decode step that runs ahead of the models.

`decode_job` runs in worker processes (or Ray CPU tasks): it probes the video, works out the
union of frames its pending extractors need, and decodes them once.

Both steps are per-video guards: whatever goes wrong with one video (a damaged file, a decoder
bug on an odd frame size, running out of memory) becomes a `VideoError` with a reason class for
the failure ledger, and the run carries on. Reason classes added here, beside the probe's:

- `decode_error`: the decoder raised while reading frames the probe had accepted
- `oom`: out of memory (host, or CUDA after one retry at half the batch size)
- `model_error`: an extractor raised on this video
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import numpy as np

from harmcache.errors import VideoError
from harmcache.extractors.base import Extractor, ExtractSettings, get_extractor
from harmcache.types import VideoFeatures
from harmcache.video.decode import DecodedVideo, VideoSource

log = logging.getLogger(__name__)


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
    except MemoryError:
        error = VideoError("oom", "out of memory while decoding")
        return DecodeResult(job, {}, error, time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - one video's decoder bug must not end the run
        log.debug("decoding %s raised", job.path, exc_info=True)
        error = VideoError("decode_error", f"{type(exc).__name__}: {exc}")
        return DecodeResult(job, {}, error, time.perf_counter() - start)


def extract_item(result: DecodeResult, extractor: Extractor) -> VideoFeatures:
    """One extractor on one decoded video, ready for a shard. Both engines call this, so the
    same video gets the same features whichever engine ran it.

    Raises `VideoError` (`oom` or `model_error`) for anything that goes wrong with this video;
    on CUDA out of memory it first retries once at half the batch size."""
    video = result.decoded[extractor.settings.decode_short_side]
    try:
        record = _extract_retrying_oom(extractor, video)
    except VideoError:
        raise
    except MemoryError:
        raise VideoError("oom", f"{extractor.name}: out of memory") from None
    except Exception as exc:  # noqa: BLE001 - one video's failure must not end the run
        log.debug("%s raised on %s", extractor.name, result.job.path, exc_info=True)
        raise VideoError("model_error", f"{extractor.name}: {type(exc).__name__}: {exc}") from None
    return VideoFeatures(result.job.video_id, video.info, result.job.path, record)


def _extract_retrying_oom(extractor: Extractor, video: DecodedVideo):
    import torch

    try:
        return extractor.extract(video)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        full = extractor.settings
        half = max(1, full.batch_size // 2)
        log.warning(
            "%s: CUDA out of memory; retrying this video at batch size %d", extractor.name, half
        )
        extractor.settings = replace(full, batch_size=half)
        try:
            return extractor.extract(video)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            raise VideoError(
                "oom", f"{extractor.name}: CUDA out of memory, also at batch size {half}"
            ) from None
        finally:
            extractor.settings = full
