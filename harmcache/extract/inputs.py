"""From inputs to jobs: identify each file by its content, drop duplicates, and keep only what
some family still lacks. A file whose (size, mtime, inode) is unchanged since it was hashed is
not read again: its memoised video id is used.
"""

from __future__ import annotations

import logging
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from harmcache.errors import VideoError
from harmcache.extract.jobs import VideoJob
from harmcache.extract.progress import Progress
from harmcache.extract.summary import InputResult
from harmcache.extractors.base import Extractor
from harmcache.hashing import sha256_file
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.store.index import FileStamp

log = logging.getLogger("harmcache.extract")


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


PLAN_CHUNK = 10_000
"""Inputs identified and looked up per step: the memo, the index and the sightings are asked
about this many at a time, so planning holds one chunk's answers, not the whole run's."""


def identify(
    cache: FeatureCache,
    paths: list[Path],
    progress: Progress | None = None,
    absolute: list[str] | None = None,
    *,
    done: int = 0,
    total: int | None = None,
) -> tuple[list[tuple[str | None, VideoError | None]], list[tuple[str, FileStamp, str]]]:
    """Each path's video id (SHA-256 of its bytes) or the reason it has none, and the memo rows
    of the files that had to be read. A file whose size, mtime and inode match the cache's memo
    keeps its memoised id without being read. Progress counts inputs identified: `done` before
    these, of `total` in the run."""
    progress = progress or Progress()
    absolute = absolute or [os.path.abspath(p) for p in paths]
    total = len(paths) if total is None else total
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
    del known
    done += len(paths) - len(to_hash)
    progress.hashing(done, total)
    fresh: list[tuple[str, FileStamp, str]] = []
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        for n, (i, (vid, error)) in enumerate(
            zip(to_hash, pool.map(lambda i: _hash(paths[i]), to_hash)), start=1
        ):
            out[i] = (vid, error)
            stamp, _ = _stamp(paths[i])
            if vid is not None and stamp is not None:
                fresh.append((absolute[i], stamp, vid))
            progress.hashing(done + n, total)
    return out, fresh


@dataclass
class Plan:
    """What planning found: the jobs, a result per input already settled (failed or cached),
    and for each job's video id the other input paths with the same bytes."""

    jobs: list[VideoJob] = field(default_factory=list)
    settled: dict[str, InputResult] = field(default_factory=dict)
    duplicates: dict[str, list[str]] = field(default_factory=dict)
    hashed: int = 0
    """inputs read and hashed (new or changed since the memo)"""


def plan_jobs(
    cache: FeatureCache,
    paths: list[Path],
    extractors: list[Extractor],
    families: list[Family],
    progress: Progress | None = None,
) -> tuple[list[VideoJob], dict[str, InputResult], dict[str, list[str]]]:
    """Identify every input, drop duplicate content, and keep only what some family still lacks,
    `PLAN_CHUNK` inputs at a time: memory holds one chunk's lookups, plus the jobs and a result
    per settled input.

    Returns the jobs, a result per input already settled (failed or cached), and for each job's
    video id the other input paths with the same bytes.
    """
    progress = progress or Progress()
    plan = Plan()
    job_of: dict[str, VideoJob] = {}
    for start in range(0, len(paths), PLAN_CHUNK):
        chunk = paths[start : start + PLAN_CHUNK]
        _plan_chunk(cache, chunk, extractors, families, progress, plan, job_of, start, len(paths))
    if plan.hashed:
        log.info("hashed %d new or changed input(s)", plan.hashed)
    return plan.jobs, plan.settled, plan.duplicates


def _plan_chunk(
    cache: FeatureCache,
    paths: list[Path],
    extractors: list[Extractor],
    families: list[Family],
    progress: Progress,
    plan: Plan,
    job_of: dict[str, VideoJob],
    done: int,
    total: int,
) -> None:
    absolute = [os.path.abspath(p) for p in paths]
    ids, fresh = identify(cache, paths, progress, absolute, done=done, total=total)
    plan.hashed += len(fresh)
    hashed = {where for where, _, _ in fresh}
    # Only the videos not already seen in this run are asked about, once per family.
    new = list(dict.fromkeys(vid for vid, _ in ids if vid is not None and vid not in job_of))
    holding = [cache.holding(f, new) for f in families]
    sightings = []
    for path, where, (vid, error) in zip(paths, absolute, ids):
        key = str(path)
        if error is not None:
            plan.settled[key] = InputResult(key, None, "failed", error.reason, error.message)
            cache.record_failure(key, None, error.reason, error.message)
            continue
        if where in hashed:  # a memo hit was seen, and recorded, when it was hashed
            sightings.append((where, vid))
        if vid in job_of:  # the same bytes as an earlier input that needs extracting
            plan.duplicates[vid].append(key)
            continue
        missing = tuple(
            (ex.name, ex.settings) for ex, done_ in zip(extractors, holding) if vid not in done_
        )
        if missing:
            job_of[vid] = VideoJob(key, vid, missing)
            plan.jobs.append(job_of[vid])
            plan.duplicates[vid] = []
        else:  # every family holds it, whichever input named it first
            plan.settled[key] = InputResult(key, vid, "cached")
    # Sightings before the memo: a memo row must never exist for a sighting that was not kept.
    cache.record_sources(sightings)
    cache.remember_identities(fresh)
