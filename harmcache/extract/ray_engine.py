"""Scale-out engine: Ray Data decodes videos in CPU tasks and streams them to model actors.

Each actor loads its backbones once, runs them per video exactly like the local engine (same
`Extractor.extract` on the same decoded frames, so the same numbers), and commits its own shards
into the shared cache folder. The driver plans, records failures, indexes the shards the actors
report, and refreshes the index from the folder at the end.

Long videos: a decode task decodes a video whole only when it fits one decode chunk (a short
clip, the usual case). A longer video's row carries no frames; the actor that takes it decodes
it itself, chunk by chunk, feeding its models as the local engine does. Memory stays bounded by
the chunk size on both sides; such a video's decoding does not overlap its own models.

Retries are safe by construction: an actor splits its batch into chunks deterministically (sorted
by video id, `shard_size` each) and shard names derive from the video ids they hold, so a batch
that Ray retries after a worker died skips the chunks it already committed instead of writing a
second copy.
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

import numpy as np

from harmcache.errors import CacheError, HarmcacheError, UsageError, VideoError
from harmcache.extract.jobs import (
    DecodeResult,
    VideoJob,
    decode_chunks,
    decode_job,
    extract_item,
    extract_streamed,
    probe_job,
)
from harmcache.extract.progress import Progress
from harmcache.extract.summary import InputResult
from harmcache.extractors.base import Extractor, ExtractSettings, get_extractor
from harmcache.hashing import canonical_json
from harmcache.log_streams import follow_stderr
from harmcache.provenance import library_versions
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.store.shard import shard_name, write_shard
from harmcache.types import VideoInfo
from harmcache.video.decode import DecodedVideo

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
    if gpus_per_worker < 0:
        raise UsageError(f"--gpus-per-worker must be 0 or more, got {gpus_per_worker:g}")
    if gpus_per_worker == 0 and any(ex.settings.device.startswith("cuda") for ex in extractors):
        raise UsageError("--device cuda with --engine ray needs --gpus-per-worker above 0")
    ray = _import_ray()
    family_of = {ex.name: fam for ex, fam in zip(extractors, families, strict=True)}
    for family in families:
        cache.ensure_family(family)  # family.json exists before any actor writes a shard
    started = _connect(ray, address)
    try:
        dataset = _dataset(ray, cache, jobs, extractors, family_of, shard_size, gpus_per_worker)
        outcomes = _collect(dataset, cache, family_of, progress)
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


def _collect(
    dataset: Any, cache: FeatureCache, family_of: dict[str, Family], progress: Progress
) -> dict[str, InputResult]:
    """Stream the actors' per-video rows: record failures, index shards, report progress."""
    by_name = {fam.name: fam for fam in family_of.values()}
    seen: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (family, shard) → (video, backend)
    outcomes: dict[str, InputResult] = {}
    for row in dataset.iter_rows():  # streams: decoded frames never gather on the driver
        vid, path = str(row["video_id"]), str(row["path"])
        if row["status"] == "failed":
            reason, message = str(row["reason"]), str(row["message"])
            cache.record_failure(path, vid, reason, message, str(row["family"]) or None)
            outcomes[vid] = InputResult(path, vid, "failed", reason, message)
        else:
            outcomes[vid] = InputResult(path, vid, "extracted")
        for family, shard, size in json.loads(str(row["shards"])):
            members = seen.setdefault((family, shard), [])
            members.append((vid, str(row["backend"])))
            if len(members) == size:  # index it now: a million shards are slow to re-open
                cache.index_shard(
                    by_name[family],
                    shard,
                    [v for v, _ in members],
                    backends=[b for _, b in members],
                    versions=json.loads(str(row["versions"])),
                )
        progress.advance(outcomes[vid])
    return outcomes


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
    committed = {fam.name: cache.committed(fam) for fam in family_of.values()}
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


# --- runs on Ray workers -----------------------------------------------------------------------
def decode_row(
    row: dict[str, Any], *, settings: dict[str, ExtractSettings], sides: list[int]
) -> dict[str, Any]:
    """Ray CPU task: decode one job and carry its frames as numpy arrays (one column pair per
    decode size, so every row has the same columns; unused sizes hold empty arrays)."""
    names = str(row["extractors"]).split(",")
    job = VideoJob(str(row["file"]), str(row["video_id"]), tuple((n, settings[n]) for n in names))
    probed = probe_job(job)
    streamed = probed.plan is not None and len(probed.plan.chunks) > 1
    result = DecodeResult(job, error=probed.error) if probed.error or streamed else decode_job(job)
    out = {"path": row["path"], "video_id": job.video_id, "extractors": row["extractors"]}
    out["reason"] = result.error.reason if result.error else ""
    out["message"] = result.error.message if result.error else ""
    out["info"] = json.dumps(probed.plan.info.to_dict()) if probed.plan else ""
    out["streamed"] = streamed
    out["times"] = np.zeros(0, np.float64)
    for side in sides:
        video = result.decoded.get(side)
        out[f"frames_{side}"] = video.frames if video else np.zeros((0, 0, 0, 3), np.uint8)
        out[f"indices_{side}"] = video.indices if video else np.zeros(0, np.int64)
        if video:
            out["info"] = json.dumps(video.info.to_dict())  # JSON floats round-trip exactly
            out["times"] = video.timeline
    return out


def _decode_results(
    batch: dict[str, np.ndarray], settings: dict[str, ExtractSettings]
) -> list[DecodeResult]:
    results = []
    for i in range(len(batch["video_id"])):
        names = str(batch["extractors"][i]).split(",")
        job = VideoJob(
            str(batch["path"][i]), str(batch["video_id"][i]), tuple((n, settings[n]) for n in names)
        )
        if batch["reason"][i]:
            error = VideoError(str(batch["reason"][i]), str(batch["message"][i]))
            results.append(DecodeResult(job, error=error))
            continue
        if bool(batch["streamed"][i]):
            info = VideoInfo(**json.loads(str(batch["info"][i])))
            results.append(DecodeResult(job, streamed=True, info=info))
            continue
        info = VideoInfo(**json.loads(str(batch["info"][i])))
        times = np.array(batch["times"][i], dtype=np.float64)
        decoded = {}
        for side in {settings[n].decode_short_side for n in names}:
            # Copies: the batch is a read-only view into Ray's object store.
            frames = np.array(batch[f"frames_{side}"][i], dtype=np.uint8)
            indices = np.array(batch[f"indices_{side}"][i], dtype=np.int64)
            decoded[side] = DecodedVideo(info, indices, frames, times)
        results.append(DecodeResult(job, decoded))
    return results


class ExtractActor:
    """Ray actor: builds and loads the extractors once, then extracts and commits batches."""

    def __init__(
        self,
        *,
        settings: dict[str, ExtractSettings],
        families: dict[str, Family],
        folders: dict[str, str],
        shard_size: int,
    ):
        self.settings = settings
        self.families = families
        self.folders = {name: Path(folder) for name, folder in folders.items()}
        self.shard_size = shard_size
        self.extractors: dict[str, Extractor] = {}
        for name, s in settings.items():
            if s.device.startswith("cuda"):
                s = replace(s, device="cuda")  # Ray shows this actor only its own GPU(s)
            extractor = get_extractor(name)(s)
            if extractor.fingerprint != families[name].fingerprint:
                raise CacheError(
                    f"{name} on this Ray node has fingerprint {extractor.fingerprint[:12]}, the "
                    f"driver {families[name].fingerprint[:12]}: give every node the same "
                    "weights (a shared --weights-dir) and the same pinned packages"
                )
            extractor.load()
            self.extractors[name] = extractor

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = sorted(_decode_results(batch, self.settings), key=lambda r: r.job.video_id)
        errors = {r.job.video_id: r.error for r in results if r.error is not None}
        failed_family: dict[str, str] = {}  # video → the family whose extractor failed on it
        good = [r for r in results if r.error is None]
        streamed = {r.job.video_id: self._stream(r) for r in good if r.streamed}
        for vid, (_, failures) in streamed.items():
            for name, exc in failures:
                errors.setdefault(vid, exc)
                if name is not None:  # else the video could not be decoded at all
                    failed_family.setdefault(vid, self.families[name].name)
        shards: dict[str, list[tuple[str, str, int]]] = {r.job.video_id: [] for r in good}
        for name, extractor in self.extractors.items():
            family = self.families[name]
            todo = [r for r in good if name in dict(r.job.extractors)]
            for start in range(0, len(todo), self.shard_size):
                chunk = todo[start : start + self.shard_size]
                final = self.folders[name] / shard_name([r.job.video_id for r in chunk])
                if not final.exists():  # else: committed before a worker died and Ray retried
                    items = []
                    for r in chunk:  # a bad video never fails the batch: it is left out
                        try:
                            if r.streamed:
                                items.append(streamed[r.job.video_id][0][name])
                            else:
                                items.append(extract_item(r, extractor))
                        except KeyError:  # this family failed on the streamed video
                            continue
                        except VideoError as exc:
                            errors.setdefault(r.job.video_id, exc)
                            failed_family.setdefault(r.job.video_id, family.name)
                    if items:
                        final = write_shard(self.folders[name], family, items)
                    chunk = [r for r in chunk if r.job.video_id in {i.video_id for i in items}]
                for r in chunk:
                    shards[r.job.video_id].append((family.name, final.name, len(chunk)))
        failed = [errors.get(r.job.video_id) for r in results]
        return {
            "video_id": np.array([r.job.video_id for r in results]),
            "path": np.array([r.job.path for r in results]),
            "status": np.array(["failed" if e else "extracted" for e in failed]),
            "reason": np.array([e.reason if e else "" for e in failed]),
            "message": np.array([e.message if e else "" for e in failed]),
            "family": np.array([failed_family.get(r.job.video_id, "") for r in results]),
            "backend": np.array([_backend(r) for r in results]),
            "versions": np.array([canonical_json(library_versions())] * len(results)),
            # (family, shard file, videos in it): lets the driver index without opening shards
            "shards": np.array([json.dumps(shards.get(r.job.video_id, [])) for r in results]),
        }

    def _stream(self, result: DecodeResult) -> tuple[dict, list]:
        """A long video decoded here chunk by chunk through every extractor it needs: (features
        by extractor, failures), or a failure for all when it cannot be decoded."""
        job = result.job
        probed = probe_job(job)
        if probed.error is not None:
            return {}, [(None, probed.error)]
        chosen = {name: self.extractors[name] for name, _ in job.extractors}
        try:
            items, errors = extract_streamed(
                probed.plan,
                decode_chunks(probed.plan),
                chosen,
                replay=lambda: decode_chunks(probed.plan),
            )
        except VideoError as exc:
            return {}, [(None, exc)]
        return dict(items), errors


def _backend(result: DecodeResult) -> str:
    if result.info is not None:
        return result.info.decoded_by
    return next((v.info.decoded_by for v in result.decoded.values()), "")
