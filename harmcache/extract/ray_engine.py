"""Scale-out engine: Ray Data decodes videos in CPU tasks and streams them to model actors.

Each actor loads its backbones once, runs each video through the same per-video path as the
local engine (`extract_video` on the same decoded frames, so the same numbers), and commits its
own shards into the shared cache folder (`harmcache.extract.ray_worker`). The driver plans,
records failures, indexes the shards the actors report, and refreshes the index from the folder
at the end.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from harmcache.errors import CacheError, HarmcacheError, UsageError, VideoError
from harmcache.extract.jobs import VideoJob
from harmcache.extract.progress import Progress
from harmcache.extract.ray_worker import ExtractActor, decode_row
from harmcache.extract.results import JobResults
from harmcache.extract.summary import InputResult
from harmcache.extractors.base import Extractor, ExtractSettings
from harmcache.log_streams import follow_stderr
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family

DECODE_MEMORY = 1 << 30
"""Bytes reserved per decode task: ~160 full-size 1080p frames plus their shrunk copies."""


def run_ray(
    cache: FeatureCache,
    jobs: list[VideoJob],
    extractors: list[Extractor],
    families: list[Family],
    *,
    shard_size: int,
    address: str | None,
    gpus_per_worker: float,
    progress: Progress,
) -> dict[str, InputResult]:
    """Extract `jobs` on a Ray cluster (a local one when `address` is None); returns each job's
    outcome keyed by video id, like the local engine."""
    if not jobs:
        return {}
    if gpus_per_worker == 0 and any(ex.settings.device.startswith("cuda") for ex in extractors):
        raise UsageError("--device cuda with --engine ray needs --gpus-per-worker above 0")
    ray = _import_ray()
    family_of = {ex.name: fam for ex, fam in zip(extractors, families, strict=True)}
    for family in families:
        cache.ensure_family(family)  # family.json exists before any actor writes a shard
    started = _connect(ray, address)
    try:
        dataset = _dataset(ray, cache, jobs, extractors, family_of, shard_size, gpus_per_worker)
        outcomes = _collect(dataset, jobs, JobResults(cache, progress, family_of))
    except Exception as exc:  # noqa: BLE001 - re-raised unchanged unless it carries our error
        error = _worker_error(exc)
        if error is None:
            raise
        raise error from None
    finally:
        if started:
            ray.shutdown()
    cache.refresh()  # drops any indexed shard this machine cannot see; finds any not reported
    _check_committed(cache, jobs, family_of, outcomes)
    return outcomes


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise UsageError("--engine ray needs ray: pip install 'harmcache[ray]'") from None
    follow_stderr("ray")
    return ray


def _worker_error(exc: Exception) -> HarmcacheError | None:
    """The user-facing error a worker raised (missing weights, a fingerprint mismatch). Ray
    hands it to the driver only as text inside its own error, traceback included."""
    from harmcache import errors

    match = re.search(r"harmcache\.errors\.(\w+): (.+)", str(exc))
    cls = getattr(errors, match.group(1), None) if match else None
    if isinstance(cls, type) and issubclass(cls, HarmcacheError):
        return cls(match.group(2).strip())
    return None


def _connect(ray: Any, address: str | None) -> bool:
    """Join `address`, or start a private local instance; True when this call started Ray."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never phone home
    quiet = {
        "include_dashboard": False,
        "log_to_driver": False,
        "ignore_reinit_error": True,
        "logging_level": logging.WARNING,
    }
    if address:
        ray.init(address=address, **quiet)
    else:
        # "local" rather than None: never attach to a cluster the user did not name. Loopback
        # keeps a local run off the network entirely.
        ray.init(address="local", num_cpus=os.cpu_count(), _node_ip_address="127.0.0.1", **quiet)
    return True


def _dataset(
    ray: Any,
    cache: FeatureCache,
    jobs: list[VideoJob],
    extractors: list[Extractor],
    family_of: dict[str, Family],
    shard_size: int,
    gpus_per_worker: float,
) -> Any:
    """The lazy pipeline: job rows → decode tasks (CPU) → extract actors (GPU where asked)."""
    settings = {ex.name: _portable(ex.settings) for ex in extractors}
    sides = sorted({s.decode_short_side for s in settings.values()})
    actors = _actor_count(ray, gpus_per_worker, math.ceil(len(jobs) / shard_size))
    ray.data.DataContext.get_current().enable_progress_bars = False  # the caller has its own
    # Workers on other nodes do not share the driver's working directory: they open absolute
    # paths, while "path" stays as given (it is what the summary reports and shards record).
    rows = [
        {
            "path": j.path,
            "file": str(Path(j.path).absolute()),
            "video_id": j.video_id,
            "extractors": ",".join(n for n, _ in j.extractors),
        }
        for j in jobs
    ]
    actor_args = {
        "settings": settings,
        "families": family_of,
        "folders": {name: str(cache.family_dir(fam).absolute()) for name, fam in family_of.items()},
        "shard_size": shard_size,
    }
    return (
        ray.data.from_items(rows)
        # The memory reservation bounds concurrent decodes per node (a 1080p decode holds its
        # full-size frames before shrinking) and keeps Ray from fusing decoding into the actors,
        # where it would stall the models.
        .map(decode_row, fn_kwargs={"settings": settings, "sides": sides}, memory=DECODE_MEMORY)
        .map_batches(
            ExtractActor,
            fn_constructor_kwargs=actor_args,
            batch_size=shard_size,  # a shard never outlives its batch, so a retry redoes it whole
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            **({"num_gpus": gpus_per_worker} if gpus_per_worker > 0 else {}),
        )
    )


def _portable(settings: ExtractSettings) -> ExtractSettings:
    """Settings a worker on another node reads the same way: an absolute --weights-dir (the
    fingerprint holds the weights' hash, not their path, so it is unchanged), and the driver's
    CPU thread count (an actor starts with one thread, which would change the floats)."""
    if settings.cpu_threads == 0 and settings.device == "cpu":
        import torch

        settings = replace(settings, cpu_threads=torch.get_num_threads())
    folder = settings.weights.weights_dir
    if folder is None:
        return settings
    return replace(settings, weights=replace(settings.weights, weights_dir=Path(folder).absolute()))


def _collect(dataset: Any, jobs: list[VideoJob], results: JobResults) -> dict[str, InputResult]:
    """Stream the actors' per-video rows: index shards, record failures, report progress."""
    job_of = {job.video_id: job for job in jobs}
    by_name = {fam.name: fam for fam in results.family_of.values()}
    seen: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (family, shard) → (video, backend)
    for row in dataset.iter_rows():  # streams: decoded frames never gather on the driver
        job = job_of[str(row["video_id"])]
        for family, shard, size in json.loads(str(row["shards"])):
            members = seen.setdefault((family, shard), [])
            members.append((job.video_id, str(row["backend"])))
            if len(members) == size:  # index it now: a million shards are slow to re-open
                results.cache.index_shard(
                    by_name[family],
                    shard,
                    [v for v, _ in members],
                    backends=[b for _, b in members],
                    versions=json.loads(str(row["versions"])),
                )
        failures = json.loads(str(row["failures"]))
        results.failed(job, [(n or None, VideoError(r, m)) for n, r, m in failures])
        results.extracted(job)  # the actor committed its shards before reporting the row
    return results.by_video


def _actor_count(ray: Any, gpus_per_worker: float, batches: int) -> int:
    resources = ray.cluster_resources()
    if gpus_per_worker > 0:
        gpus = resources.get("GPU", 0.0)
        count = int(gpus // gpus_per_worker)
        if count < 1:
            raise UsageError(
                f"--gpus-per-worker {gpus_per_worker:g} but the Ray cluster has {gpus:g} GPU(s)"
            )
    else:
        # On CPUs the models cost far more than decoding; still leave decode tasks half the cores.
        count = max(1, int(resources.get("CPU", 2)) // 2)
    return max(1, min(count, batches))  # an actor with nothing to do would still load models


def _check_committed(
    cache: FeatureCache,
    jobs: list[VideoJob],
    family_of: dict[str, Family],
    outcomes: dict[str, InputResult],
) -> None:
    """Every job needs an outcome and every extracted video an indexed shard per family; a miss
    means the actors wrote where the driver cannot see (a cache folder the nodes do not share)."""
    ids = [job.video_id for job in jobs]
    committed = {fam.name: cache.holding(fam, ids) for fam in family_of.values()}
    for job in jobs:
        outcome = outcomes.get(job.video_id)
        if outcome is None:
            raise CacheError(f"the Ray run returned no result for {job.path}")
        if outcome.status == "failed":
            continue
        for name, _ in job.extractors:
            folder = cache.family_dir(family_of[name])
            if job.video_id not in committed[family_of[name].name]:
                raise CacheError(
                    f"the Ray run finished but {job.path} is not in {folder}; is the cache "
                    "folder on a filesystem that every Ray node shares?"
                )
