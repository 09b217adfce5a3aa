"""Stage one: decode each video once, run the pending extractors, commit shards atomically.

The run is resumable by construction: a video is skipped for every family that already holds
it, and a video counts as extracted only once its shards are committed. A rerun costs almost
nothing: a file whose (size, mtime, inode) is unchanged since it was hashed is not read again.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from harmcache.errors import CacheError, UsageError
from harmcache.extract.batcher import Shard, ShardBatcher
from harmcache.extract.decode_ahead import VideoStream, video_streams
from harmcache.extract.inputs import plan_jobs
from harmcache.extract.jobs import VideoJob
from harmcache.extract.per_video import VideoOutcome, extract_video
from harmcache.extract.progress import Progress
from harmcache.extract.results import JobResults
from harmcache.extract.summary import ExtractSummary, InputResult
from harmcache.extractors.base import Extractor, ExtractSettings, get_extractor
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.types import VideoFeatures
from harmcache.video.intake import expand_inputs


def build_extractors(names, settings: ExtractSettings) -> list[Extractor]:
    """Extractor instances (models not loaded yet) for the given registry names."""
    return [get_extractor(name)(settings) for name in names]


def run_extraction(
    inputs: list[str | Path],
    cache_dir: str | Path,
    extractors: list[Extractor],
    *,
    workers: int = 1,
    shard_size: int = 8,
    engine: str = "local",
    ray_address: str | None = None,
    gpus_per_worker: float = 0.0,
    progress: Progress | None = None,
) -> ExtractSummary:
    """Extract every input into the cache and account for each one in the summary."""
    start = time.perf_counter()
    progress = progress or Progress()
    paths = expand_inputs(list(inputs))
    _check_usable(inputs, paths)
    families = [Family.from_spec(ex.spec()) for ex in extractors]  # resolves weights first
    with FeatureCache(cache_dir, create=True) as cache, _writer_lock(cache):
        jobs, settled, duplicates = plan_jobs(cache, paths, extractors, families, progress)
        if jobs and not cache.writable:
            raise CacheError(
                f"the cache {cache.root} is read-only and {len(jobs)} video(s) still need "
                "extracting; extract into a writable cache"
            )
        progress.start(len(jobs), sum(r.status == "cached" for r in settled.values()))
        for result in settled.values():
            progress.advance(result)
        if engine == "local":
            outcomes = _run_local(cache, jobs, extractors, families, workers, shard_size, progress)
        elif engine == "ray":
            from harmcache.extract.ray_engine import run_ray

            outcomes = run_ray(
                cache,
                jobs,
                extractors,
                families,
                shard_size=shard_size,
                address=ray_address,
                gpus_per_worker=gpus_per_worker,
                progress=progress,
            )
        else:  # ExtractConfig checks the user's choice; this is a caller's mistake
            raise ValueError(f"unknown engine {engine!r}")
        for vid, result in outcomes.items():
            settled[result.path] = result
            for dup in duplicates.get(vid, []):
                status = "failed" if result.status == "failed" else "cached"
                settled[dup] = InputResult(dup, vid, status, result.reason, result.message)
                if status == "failed":
                    cache.record_failure(dup, vid, result.reason or "", result.message or "")
                progress.advance(settled[dup])
        for vid, dups in duplicates.items():
            for dup in dups:
                if dup not in settled:
                    settled[dup] = InputResult(dup, vid, "cached")
                    progress.advance(settled[dup])
    progress.close()
    ordered = [settled[str(p)] for p in paths]
    return ExtractSummary(ordered, time.perf_counter() - start)


def _check_usable(inputs: list[str | Path], paths: list[Path]) -> None:
    """Refuse a run with nothing to read before any cache is made: a typo'd path or an empty
    folder is a usage error, not a cache holding one failure."""
    if not paths:
        raise UsageError(f"nothing usable: no videos found in {', '.join(map(str, inputs))}")
    if not any(p.exists() for p in paths):
        shown = ", ".join(map(str, paths[:3])) + (" ..." if len(paths) > 3 else "")
        raise UsageError(f"nothing usable: no such file or folder: {shown}")


def _writer_lock(cache: FeatureCache):
    """The shared writer lock for the run (nothing to hold on a read-only cache)."""
    return cache.lock().shared() if cache.writable else contextlib.nullcontext()


def _run_local(
    cache: FeatureCache,
    jobs: list[VideoJob],
    extractors: list[Extractor],
    families: list[Family],
    workers: int,
    shard_size: int,
    progress: Progress,
) -> dict[str, InputResult]:
    by_name = {ex.name: ex for ex in extractors}
    family_of = dict(zip(by_name, families, strict=True))
    results = JobResults(cache, progress, family_of)
    batcher = ShardBatcher(shard_size)
    job_of = {job.video_id: job for job in jobs}
    held: dict[tuple[str, str], VideoFeatures] = {}  # (extractor, video) → awaiting its shard

    def commit(shards: list[Shard]) -> None:
        for shard in shards:
            items = [held.pop((shard.family, vid)) for vid in shard.video_ids]
            cache.commit(family_of[shard.family], items)
            for vid in batcher.committed(shard):
                results.extracted(job_of[vid])

    for stream in video_streams(jobs, workers):
        outcome = _extract(stream, by_name, progress)
        results.failed(stream.job, outcome.ledger())
        for name, item in outcome.features.items():
            held[(name, stream.job.video_id)] = item
        commit(batcher.add(stream.job.video_id, outcome.features))
    commit(batcher.flush())
    return results.by_video


def _extract(stream: VideoStream, by_name: dict[str, Extractor], progress: Progress):
    if stream.error is not None:
        return VideoOutcome(stream.job, error=stream.error)
    job, plan = stream.job, stream.plan
    position = None
    if len(plan.chunks) > 1:  # a long video: show where in it the models are

        def position(seconds: float) -> None:
            progress.position(job.path, seconds, plan.duration)

    chosen = {name: by_name[name] for name, _ in job.extractors}
    return extract_video(plan, stream.chunks, chosen, position=position)


def extract_with_specs(
    paths: list[Path],
    cache_dir: Path,
    specs: dict[str, dict],
    *,
    device: str = "cpu",
    weights_dir: Path | None = None,
    progress: Progress | None = None,
) -> ExtractSummary:
    """Extract whatever the cache lacks with exactly the backbones and settings in `specs`
    (extractor name → family spec, as a run saves them)."""
    from harmcache.extract.respec import extractor_for_spec

    extractors = [
        extractor_for_spec(spec, device=device, weights_dir=weights_dir) for spec in specs.values()
    ]
    return run_extraction(list(paths), cache_dir, extractors, workers=0, progress=progress)
