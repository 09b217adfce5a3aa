"""Stage one: decode each video once, run the pending extractors, commit shards atomically.

The run is resumable by construction: a video is skipped for every family that already holds
it, and a video counts as extracted only once its shards are committed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harmcache.errors import UsageError, VideoError
from harmcache.extract.handoff import claim, decode_job_shared
from harmcache.extract.jobs import (
    DecodeResult,
    VideoJob,
    decode_job,
    exit_with_parent,
    extract_item,
)
from harmcache.extract.progress import Progress
from harmcache.extract.summary import ExtractSummary, InputResult
from harmcache.extractors.base import Extractor, ExtractSettings, get_extractor
from harmcache.hashing import sha256_file
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.store.shard import ShardItem
from harmcache.video.intake import expand_inputs

log = logging.getLogger(__name__)

DEFAULT_EXTRACTORS = ("yolo", "clip", "slowfast")


def build_extractors(
    names: list[str] | tuple[str, ...], settings: ExtractSettings
) -> list[Extractor]:
    """Extractor instances (models not loaded yet) for the given registry names."""
    if not names:
        raise UsageError("no extractors chosen: use --extractors yolo,clip,slowfast")
    if len(set(names)) != len(names):
        raise UsageError(f"an extractor is named twice in {','.join(names)}")
    return [get_extractor(name)(settings) for name in names]


def _identify(path: Path) -> tuple[str | None, VideoError | None]:
    try:
        if path.is_dir():
            return None, VideoError("unreadable", "is a folder, not a video")
        return sha256_file(path), None
    except FileNotFoundError:
        return None, VideoError("missing", f"no such file: {path}")
    except OSError as exc:
        return None, VideoError("unreadable", exc.strerror or str(exc))


class ShardWriter:
    """Buffers finished videos per family and commits a shard every `shard_size` videos."""

    def __init__(self, cache: FeatureCache, shard_size: int):
        self.cache = cache
        self.shard_size = shard_size
        self.pending: dict[str, tuple[Family, list[ShardItem]]] = {}
        self.waiting: dict[str, set[str]] = {}  # video id → families not yet committed

    def add(self, items: list[tuple[Family, ShardItem]]) -> list[str]:
        """Queue one video's features for each of its families; returns the video ids whose
        last pending shard just committed (a video is done only when all its families are)."""
        for family, item in items:
            self.waiting.setdefault(item.video_id, set()).add(family.name)
        done: list[str] = []
        for family, item in items:
            _, queued = self.pending.setdefault(family.name, (family, []))
            queued.append(item)
            if len(queued) >= self.shard_size:
                done += self._commit(family.name)
        return done

    def _commit(self, name: str) -> list[str]:
        family, items = self.pending.pop(name)
        self.cache.commit(family, items)
        done = []
        for item in items:
            left = self.waiting[item.video_id]
            left.discard(name)
            if not left:
                done.append(item.video_id)
                del self.waiting[item.video_id]
        return done

    def flush(self) -> list[str]:
        done: list[str] = []
        for name in sorted(self.pending):
            done += self._commit(name)
        return done


def plan_jobs(
    cache: FeatureCache, paths: list[Path], extractors: list[Extractor], families: list[Family]
) -> tuple[list[VideoJob], dict[str, InputResult], dict[str, list[str]]]:
    """Hash every input, drop duplicate content, and keep only what some family still lacks.

    Returns the jobs, a result per input already settled (failed or cached), and for each job's
    video id the other input paths with the same bytes.
    """
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        ids = list(pool.map(_identify, paths))
    settled: dict[str, InputResult] = {}
    first_path: dict[str, str] = {}
    duplicates: dict[str, list[str]] = {}
    sightings = []
    committed = [cache.committed(f) for f in families]
    jobs: list[VideoJob] = []
    for path, (vid, error) in zip(paths, ids):
        key = str(path)
        if error is not None:
            settled[key] = InputResult(key, None, "failed", error.reason, error.message)
            cache.record_failure(key, None, error.reason, error.message)
            continue
        sightings.append((str(path.absolute()), vid))
        if vid in first_path:
            duplicates[vid].append(key)
            continue
        first_path[vid] = key
        duplicates[vid] = []
        missing = tuple(
            (ex.name, ex.settings) for ex, done in zip(extractors, committed) if vid not in done
        )
        if missing:
            jobs.append(VideoJob(key, vid, missing))
        else:
            settled[key] = InputResult(key, vid, "cached")
    cache.record_sources(sightings)
    return jobs, settled, duplicates


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
    if shard_size < 1:
        raise UsageError(f"--shard-size must be at least 1, got {shard_size}")
    if workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {workers}")
    families = [Family.from_spec(ex.spec()) for ex in extractors]  # resolves weights first
    with FeatureCache(cache_dir, create=True) as cache:
        jobs, settled, duplicates = plan_jobs(cache, paths, extractors, families)
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
        else:
            raise UsageError(f"unknown --engine {engine!r}; choose local or ray")
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


def _decoded_stream(jobs: list[VideoJob], workers: int) -> Iterator[DecodeResult]:
    """Decode ahead of the models in worker processes, yielding results in job order."""
    if workers == 0 or len(jobs) <= 1:
        yield from map(decode_job, jobs)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the parent holds torch's thread pools, which do not survive a fork.
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=mp.get_context("spawn"),
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        ahead = workers * 2
        futures = [pool.submit(decode_job_shared, job) for job in jobs[:ahead]]
        for i in range(len(jobs)):
            if i + ahead < len(jobs):
                futures.append(pool.submit(decode_job_shared, jobs[i + ahead]))
            yield claim(futures[i].result())
            futures[i] = None  # type: ignore[call-overload]  # let the frames go


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
    family_of = {ex.name: fam for ex, fam in zip(extractors, families)}
    writer = ShardWriter(cache, shard_size)
    outcomes: dict[str, InputResult] = {}
    path_of = {job.video_id: job.path for job in jobs}

    def finish(video_ids: list[str]) -> None:
        for vid in video_ids:
            outcomes[vid] = InputResult(path_of[vid], vid, "extracted")
            progress.advance(outcomes[vid])

    for result in _decoded_stream(jobs, workers):
        job = result.job
        if result.error is not None:
            err = result.error
            cache.record_failure(job.path, job.video_id, err.reason, err.message)
            outcomes[job.video_id] = InputResult(
                job.path, job.video_id, "failed", err.reason, err.message
            )
            progress.advance(outcomes[job.video_id])
            continue
        finish(
            writer.add(
                [
                    (family_of[name], extract_item(result, by_name[name]))
                    for name, _ in job.extractors
                ]
            )
        )
    finish(writer.flush())
    return outcomes


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
