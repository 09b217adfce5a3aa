"""Stage one: decode each video once, run the pending extractors, commit shards atomically.

The run is resumable by construction: a video is skipped for every family that already holds
it, and a video counts as extracted only once its shards are committed. A rerun costs almost
nothing: a file whose (size, mtime, inode) is unchanged since it was hashed is not read again.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from harmcache.errors import CacheError, UsageError, VideoError
from harmcache.extract.handoff import claim, decode_chunk_shared
from harmcache.extract.jobs import (
    ChunkJob,
    ChunkResult,
    ProbeResult,
    VideoJob,
    VideoPlan,
    decode_chunks,
    exit_with_parent,
    extract_streamed,
    probe_job,
)
from harmcache.extract.progress import Progress
from harmcache.extract.summary import ExtractSummary, InputResult
from harmcache.extractors.base import Extractor, ExtractSettings, get_extractor
from harmcache.hashing import sha256_file
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.store.index import FileStamp
from harmcache.types import VideoFeatures
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


def _stamp(path: Path) -> tuple[FileStamp | None, VideoError | None]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None, VideoError("missing", f"no such file: {path}")
    except OSError as exc:
        return None, VideoError("unreadable", exc.strerror or str(exc))
    if stat.S_ISDIR(st.st_mode):
        return None, VideoError("unreadable", "is a folder, not a video")
    return (st.st_size, st.st_mtime_ns, st.st_ino), None


def _hash(path: Path) -> tuple[str | None, VideoError | None]:
    try:
        return sha256_file(path), None
    except FileNotFoundError:
        return None, VideoError("missing", f"no such file: {path}")
    except OSError as exc:
        return None, VideoError("unreadable", exc.strerror or str(exc))


def identify(
    cache: FeatureCache,
    paths: list[Path],
    progress: Progress | None = None,
    absolute: list[str] | None = None,
) -> tuple[list[tuple[str | None, VideoError | None]], list[tuple[str, FileStamp, str]]]:
    """Each path's video id (SHA-256 of its bytes) or the reason it has none, and the memo rows
    of the files that had to be read. A file whose size, mtime and inode match the cache's memo
    keeps its memoised id without being read."""
    progress = progress or Progress()
    absolute = absolute or [os.path.abspath(p) for p in paths]
    known = cache.known_identities(absolute)
    out: list[tuple[str | None, VideoError | None]] = [(None, None)] * len(paths)
    to_hash: list[int] = []
    for i, path in enumerate(paths):
        stamp, error = _stamp(path)
        memo = known.get(absolute[i])
        if error is not None:
            out[i] = (None, error)
        elif memo is not None and memo[0] == stamp:
            out[i] = (memo[1], None)
        else:
            to_hash.append(i)
    progress.hashing(0, len(to_hash))
    fresh: list[tuple[str, FileStamp, str]] = []
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        for n, (i, (vid, error)) in enumerate(
            zip(to_hash, pool.map(lambda i: _hash(paths[i]), to_hash)), start=1
        ):
            out[i] = (vid, error)
            stamp, _ = _stamp(paths[i])
            if vid is not None and stamp is not None:
                fresh.append((absolute[i], stamp, vid))
            progress.hashing(n, len(to_hash))
    return out, fresh


class ShardWriter:
    """Buffers finished videos per family and commits a shard every `shard_size` videos."""

    def __init__(self, cache: FeatureCache, shard_size: int):
        self.cache = cache
        self.shard_size = shard_size
        self.pending: dict[str, tuple[Family, list[VideoFeatures]]] = {}
        self.waiting: dict[str, set[str]] = {}  # video id → families not yet committed

    def add(self, items: list[tuple[Family, VideoFeatures]]) -> list[str]:
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
    cache: FeatureCache,
    paths: list[Path],
    extractors: list[Extractor],
    families: list[Family],
    progress: Progress | None = None,
) -> tuple[list[VideoJob], dict[str, InputResult], dict[str, list[str]]]:
    """Identify every input, drop duplicate content, and keep only what some family still lacks.

    Returns the jobs, a result per input already settled (failed or cached), and for each job's
    video id the other input paths with the same bytes.
    """
    absolute = [os.path.abspath(p) for p in paths]
    ids, fresh = identify(cache, paths, progress, absolute)
    hashed = {where for where, _, _ in fresh}
    settled: dict[str, InputResult] = {}
    first_path: dict[str, str] = {}
    duplicates: dict[str, list[str]] = {}
    sightings = []
    committed = [cache.committed(f) for f in families]
    jobs: list[VideoJob] = []
    for path, where, (vid, error) in zip(paths, absolute, ids):
        key = str(path)
        if error is not None:
            settled[key] = InputResult(key, None, "failed", error.reason, error.message)
            cache.record_failure(key, None, error.reason, error.message)
            continue
        if where in hashed:  # a memo hit was seen, and recorded, when it was hashed
            sightings.append((where, vid))
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
    # Sightings before the memo: a memo row must never exist for a sighting that was not kept.
    cache.record_sources(sightings)
    cache.remember_identities(fresh)
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
    if engine not in ("local", "ray"):
        raise UsageError(f"unknown --engine {engine!r}; choose local or ray")
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
    import contextlib

    return cache.lock().shared() if cache.writable else contextlib.nullcontext()


@dataclass
class VideoStream:
    """One video on its way to the models: its plan, or why it has none, and its decoded chunks
    in order (pulled from the decode workers as the models consume them)."""

    job: VideoJob
    plan: VideoPlan | None
    error: VideoError | None
    chunks: Iterator[ChunkResult]


def _video_streams(
    jobs: list[VideoJob],
    workers: int,
    *,
    probe: Callable[[VideoJob], ProbeResult] = probe_job,
    chunk: Callable[[ChunkJob], ChunkResult] | None = None,
) -> Iterator[VideoStream]:
    """Decode ahead of the models in worker processes, yielding videos in job order; each
    video's chunks must be consumed (or abandoned) before the next video is asked for.

    Without workers, or for one video that fits one chunk, decoding runs inline."""
    if workers > 0 and len(jobs) == 1:
        first = probe(jobs[0])
        if first.error is not None or len(first.plan.chunks) <= 1:
            yield _inline_stream(first)
            return
        decoder = _PoolDecoder(jobs, workers, probe, chunk or decode_chunk_shared, {0: first})
        yield from decoder.streams()
        return
    if workers == 0:
        for job in jobs:
            yield _inline_stream(probe(job))
        return
    yield from _PoolDecoder(jobs, workers, probe, chunk or decode_chunk_shared).streams()


def _inline_stream(probed: ProbeResult) -> VideoStream:
    if probed.error is not None:
        return VideoStream(probed.job, None, probed.error, iter(()))
    return VideoStream(probed.job, probed.plan, None, decode_chunks(probed.plan))


class _PoolDecoder:
    """Probe and chunk tasks on a process pool, at most `2 × workers` chunks decoded ahead of
    the models (so memory is bounded by chunks, never by a video's length).

    A worker that dies (a decoder crashing the process) breaks the pool: the pool is rebuilt,
    the task it was on is retried once on its own, and only a video that kills a worker twice
    is recorded as `worker_crash`. Every other task is resubmitted untouched."""

    def __init__(self, jobs, workers, probe, chunk, probed: dict[int, ProbeResult] | None = None):
        self.jobs = jobs
        self.workers = workers
        self.probe = probe
        self.chunk = chunk
        self.ahead = max(2, workers * 2)
        self.pool = _decode_pool(workers)
        self.plans: dict[int, ProbeResult] = dict(probed or {})
        self.futures: dict[tuple, Future] = {}
        self.cursor = (0, 0)

    def streams(self) -> Iterator[VideoStream]:
        try:
            for i, job in enumerate(self.jobs):
                self.cursor = (i, 0)
                self._submit_ahead()
                probed = self._probe_result(i)
                if probed.error is not None:
                    yield VideoStream(job, None, probed.error, iter(()))
                    continue
                chunks = self._chunks_of(i, probed.plan)
                yield VideoStream(job, probed.plan, None, chunks)
                chunks.close()
                self._drop(lambda key, i=i: key[0] == "c" and key[1] == i)
                self.plans.pop(i, None)
        finally:
            self.pool.shutdown(wait=False, cancel_futures=True)
            _release(self.futures)

    def _chunks_of(self, i: int, plan: VideoPlan) -> Iterator[ChunkResult]:
        for c in range(len(plan.chunks)):
            self.cursor = (i, c)
            self._submit_ahead()
            key = ("c", i, c)
            result = self._result(key, lambda p=plan, c=c: (self.chunk, p.chunk_job(c)))
            if result is None:  # it took the worker down twice
                error = VideoError("worker_crash", "the decoder crashed its worker process")
                result = ChunkResult(plan.job, plan.chunks[c].upto, {}, error)
            yield claim(result)
            if result.error is not None:
                return

    def _probe_result(self, i: int) -> ProbeResult:
        if i not in self.plans:
            result = self._result(("p", i), lambda: (self.probe, self.jobs[i]))
            if result is None:
                error = VideoError("worker_crash", "the decoder crashed its worker process")
                result = ProbeResult(self.jobs[i], None, error)
            self.plans[i] = result
        return self.plans[i]

    def _submit_ahead(self) -> None:
        """Keep the probes of the next videos and up to `ahead` chunks in flight."""
        i0, c0 = self.cursor
        for j in range(i0, min(i0 + self.ahead + 1, len(self.jobs))):
            if j not in self.plans and ("p", j) not in self.futures:
                self.futures[("p", j)] = self.pool.submit(self.probe, self.jobs[j])
        budget = self.ahead - sum(1 for key in self.futures if key[0] == "c")
        j = i0
        while budget > 0 and j < len(self.jobs):
            probed = self._probe_if_done(j)
            if probed is None:
                return
            if probed.plan is not None:
                for c in range(c0 if j == i0 else 0, len(probed.plan.chunks)):
                    if budget <= 0:
                        return
                    if ("c", j, c) not in self.futures:
                        task = probed.plan.chunk_job(c)
                        self.futures[("c", j, c)] = self.pool.submit(self.chunk, task)
                        budget -= 1
            j += 1

    def _probe_if_done(self, j: int) -> ProbeResult | None:
        if j in self.plans:
            return self.plans[j]
        future = self.futures.get(("p", j))
        if future is None or not future.done():
            return None
        return self._probe_result(j)

    def _result(self, key: tuple, task: Callable[[], tuple]):
        """The task's result, or None if it crashed its worker twice."""
        future = self.futures.pop(key, None)
        if future is None:
            fn, arg = task()
            future = self.pool.submit(fn, arg)
        try:
            return future.result()
        except BrokenProcessPool:
            self.pool.shutdown(wait=False, cancel_futures=True)
            _release(self.futures)  # every other task is resubmitted as it is needed
            self.pool = _decode_pool(self.workers)
            fn, arg = task()
            result = _decode_alone(self.pool, fn, arg)
            if result is None:
                self.pool = _decode_pool(self.workers)
            return result

    def _drop(self, which: Callable[[tuple], bool]) -> None:
        """Forget the tasks of an abandoned video, freeing their shared memory."""
        dropped = {key: f for key, f in self.futures.items() if which(key)}
        for key in dropped:
            del self.futures[key]
        for future in dropped.values():
            future.cancel()
        _release(dropped)


def _release(futures: dict) -> None:
    """Free the shared-memory frames of decodes that finished but will not be used."""
    for future in futures.values():
        if future.done() and not future.cancelled() and future.exception() is None:
            result = future.result()
            if isinstance(result, ChunkResult):
                claim(result)
    futures.clear()


def _decode_pool(workers: int):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the parent holds torch's thread pools, which do not survive a fork.
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=mp.get_context("spawn"),
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    )


def _decode_alone(pool, fn, arg):
    try:
        return pool.submit(fn, arg).result()
    except BrokenProcessPool:
        pool.shutdown(wait=False, cancel_futures=True)
        return None


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
            if vid not in outcomes:  # a video whose other extractor failed stays failed
                outcomes[vid] = InputResult(path_of[vid], vid, "extracted")
                progress.advance(outcomes[vid])

    def fail(job: VideoJob, err: VideoError, family: str | None = None) -> None:
        cache.record_failure(job.path, job.video_id, err.reason, err.message, family)
        if job.video_id in outcomes:  # a second family failed: reported once, ledgered twice
            return
        outcomes[job.video_id] = InputResult(
            job.path, job.video_id, "failed", err.reason, err.message
        )
        progress.advance(outcomes[job.video_id])

    for stream in _video_streams(jobs, workers):
        job, plan = stream.job, stream.plan
        if stream.error is not None:
            fail(job, stream.error)
            continue
        chosen = {name: by_name[name] for name, _ in job.extractors}
        position = None
        if len(plan.chunks) > 1:  # a long video: show where in it the models are

            def position(seconds: float, path=job.path, total=plan.duration) -> None:
                progress.position(path, seconds, total)

        try:
            items, errors = extract_streamed(
                plan,
                stream.chunks,
                chosen,
                replay=lambda p=plan: decode_chunks(p),
                position=position,
            )
        except VideoError as exc:  # a chunk failed to decode: the whole video failed
            fail(job, exc)
            continue
        for name, exc in errors:  # the families that did succeed are still committed
            fail(job, exc, family_of[name].name)
        finish(writer.add([(family_of[name], item) for name, item in items]))
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
