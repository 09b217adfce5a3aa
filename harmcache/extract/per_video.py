"""The per-video extraction path: every pending extractor on one video, fed its decoded chunks
as they arrive. Both engines call `extract_video`, so the same video gets the same features
whichever engine ran it; only what happens to the outcome differs (the local engine commits
shards, a Ray actor writes them and reports rows to the driver).

Each extractor is guarded on its own: whatever goes wrong with it on this video becomes a
`VideoError` for the failure ledger, and the other extractors' features are kept. Reason
classes added here:

- `oom`: out of memory (host, or CUDA after one retry at half the batch size)
- `model_error`: an extractor raised on this video
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from harmcache.errors import VideoError
from harmcache.extract.jobs import ChunkResult, DecodeResult, VideoJob, VideoPlan, decode_chunks
from harmcache.extractors.base import Extractor
from harmcache.types import VideoFeatures

log = logging.getLogger(__name__)


@dataclass
class VideoOutcome:
    """What extracting one video gave: the features of each extractor that succeeded, and why
    each other one failed (both keyed by extractor name, in the order the extractors were
    given). `error` is set when the video itself could not be used (opened, planned or
    decoded): then no extractor has features."""

    job: VideoJob
    features: dict[str, VideoFeatures] = field(default_factory=dict)
    failures: dict[str, VideoError] = field(default_factory=dict)
    error: VideoError | None = None

    def ledger(self) -> list[tuple[str | None, VideoError]]:
        """Each failure with the extractor it belongs to (None: the video itself), as the
        failure ledger records them."""
        if self.error is not None:
            return [(None, self.error)]
        return list(self.failures.items())


def extract_video(
    plan: VideoPlan,
    chunks: Iterable[ChunkResult],
    extractors: dict[str, Extractor],
    *,
    replay: Callable[[], Iterable[ChunkResult]] | None = None,
    position: Callable[[float], None] | None = None,
) -> VideoOutcome:
    """Every extractor in `extractors` (name → extractor) on one video, fed `chunks` in order.

    On CUDA out of memory an extractor is retried once at half the batch size over `replay()`,
    the video's chunks again (default: decoded again from the file); a second one is an `oom`
    failure. A chunk that failed to decode fails the whole video. `position(seconds)` hears how
    far into the video the models are after each chunk."""
    replay = replay or (lambda: decode_chunks(plan))
    try:
        features, failures, retry = _run_sessions(plan, chunks, extractors, position)
        for name in retry:
            extractor = extractors[name]
            full = extractor.settings
            half = max(1, full.batch_size // 2)
            log.warning("%s: CUDA out of memory; retrying this video at batch size %d", name, half)
            extractor.settings = replace(full, batch_size=half)
            try:
                again, failed, oom = _run_sessions(plan, replay(), {name: extractor}, None)
            finally:
                extractor.settings = full
            features.update(again)
            failures.update(failed)
            if oom:
                message = f"{name}: CUDA out of memory, also at batch size {half}"
                failures[name] = VideoError("oom", message)
    except VideoError as exc:  # a chunk failed to decode: the whole video failed
        return VideoOutcome(plan.job, error=exc)
    return VideoOutcome(
        plan.job,
        {name: features[name] for name in extractors if name in features},
        {name: failures[name] for name in extractors if name in failures},
    )


def extract_item(result: DecodeResult, extractor: Extractor) -> VideoFeatures:
    """One extractor on one video decoded by `decode_job` (tests, benchmarks).

    Raises the `VideoError` of anything that went wrong with this video."""
    if result.error is not None:
        raise result.error
    outcome = extract_video(
        result.plan, result.chunks(), {extractor.name: extractor}, replay=result.chunks
    )
    if outcome.error is not None:
        raise outcome.error
    if outcome.failures:
        raise outcome.failures[extractor.name]
    return outcome.features[extractor.name]


def _run_sessions(plan, chunks, extractors, position):
    """One pass over the chunks: (features, failures, names to retry after CUDA OOM)."""
    import torch

    sessions = {}
    failures: dict[str, VideoError] = {}
    retry: list[str] = []

    def failed(name: str, exc: BaseException) -> None:
        sessions.pop(name, None)
        if isinstance(exc, torch.cuda.OutOfMemoryError):
            torch.cuda.empty_cache()
            retry.append(name)
        elif isinstance(exc, VideoError):
            failures[name] = exc
        elif isinstance(exc, MemoryError):
            failures[name] = VideoError("oom", f"{name}: out of memory")
        else:
            log.debug("%s raised on %s", name, plan.job.path, exc_info=exc)
            failures[name] = VideoError("model_error", f"{name}: {type(exc).__name__}: {exc}")

    for name, extractor in extractors.items():
        try:
            extractor.load()
            sessions[name] = _session(extractor, plan)
        except Exception as exc:  # noqa: BLE001 - one video's failure must not end the run
            failed(name, exc)
    for chunk in chunks:
        if chunk.error is not None:
            raise chunk.error
        for name in list(sessions):
            video = chunk.decoded[extractors[name].settings.decode_short_side]
            try:
                sessions[name].feed(video, chunk.upto)
            except Exception as exc:  # noqa: BLE001 - one video's failure must not end the run
                failed(name, exc)
        if position is not None:
            position(float(plan.times[min(chunk.upto, len(plan.times) - 1)]))
    features = {}
    for name, session in list(sessions.items()):
        try:
            record = session.finish()
        except Exception as exc:  # noqa: BLE001 - one video's failure must not end the run
            failed(name, exc)
            continue
        features[name] = VideoFeatures(plan.job.video_id, plan.info, plan.job.path, record)
    return features, failures, retry


def _session(extractor: Extractor, plan: VideoPlan):
    """The extractor's session for this video. A frame extractor is fed decoded frames; one that
    reads another stream of the file itself (the sound track) opens the file in its session,
    after the video's picture has been probed."""
    opener = getattr(extractor, "source_session", None)
    if opener is not None:
        return opener(plan.job.path, plan.info, plan.times)
    return extractor.session(plan.info, plan.times)
