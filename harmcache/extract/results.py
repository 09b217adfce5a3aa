"""Each job's result, as both engines account for it: a video is reported once (its summary
entry and one progress step), and each of its failures goes into the cache's failure ledger with
the family it belongs to."""

from __future__ import annotations

from collections.abc import Iterable

from harmcache.errors import VideoError
from harmcache.extract.jobs import VideoJob
from harmcache.extract.progress import Progress
from harmcache.extract.summary import InputResult
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family


class JobResults:
    def __init__(self, cache: FeatureCache, progress: Progress, family_of: dict[str, Family]):
        self.cache = cache
        self.progress = progress
        self.family_of = family_of
        """Extractor name → the family its features go to."""
        self.by_video: dict[str, InputResult] = {}

    def failed(self, job: VideoJob, failures: Iterable[tuple[str | None, VideoError]]) -> None:
        """Ledger each (extractor name, error) of the video (None: the video itself could not
        be used); the first one is the video's reported result. The families that did succeed
        are still committed."""
        for name, error in failures:
            family = self.family_of[name].name if name is not None else None
            self.cache.record_failure(job.path, job.video_id, error.reason, error.message, family)
            if job.video_id not in self.by_video:  # a second family failed: reported once
                self._report(
                    InputResult(job.path, job.video_id, "failed", error.reason, error.message)
                )

    def extracted(self, job: VideoJob) -> None:
        """Every shard holding the video is committed (a video whose other extractor failed
        stays failed)."""
        if job.video_id not in self.by_video:
            self._report(InputResult(job.path, job.video_id, "extracted"))

    def _report(self, result: InputResult) -> None:
        self.by_video[result.video_id] = result
        self.progress.advance(result)
