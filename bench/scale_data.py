"""Synthetic caches in the real on-disk format, as `harmcache extract` leaves them, at any size.

`build(workdir, n)` writes n tiny input files and a cache holding one CLIP family of them:

    WORKDIR/inputs/NNNN/vNNNNNNN.mp4   72 bytes each (64 pseudo-random bytes, then the index):
                                       unique, so each is its own video (id: SHA-256 of them)
    WORKDIR/cache/                     harmcache.json, features/<family>/family.json and shards
                                       of `shard_videos` videos, index.sqlite with the entries,
                                       the sources and the memo, sources.jsonl
    WORKDIR/labels.csv                 path,label; about 40 % harmful

The family is the one `harmcache extract --random-init --extractors clip` makes with default
options on this machine: its spec comes from the same config, device resolution and extractor
that command uses, so an extract rerun over the inputs finds every one cached. Each video is a
2-frame clip with CLIP's 512-d rows for its 2 frames (what the extractor gives a 2-frame video):
`cache verify` checks a real width, and the shards stay small. Harmful videos carry +1 in their
first `SIGNAL_DIMS` dimensions, so a head has something real to learn.

Shards are written by the project's own `write_shard_file` (the layout writer that
`write_shard` commits), committed by rename, and indexed in batches as `FeatureCache.refresh`
indexes found shards; the sources and the memo go through `record_sources` and
`remember_identities`, as extraction planning records them. What the build skips is the
per-shard fsync: the caches are scratch, and one `os.sync()` at the end makes them durable.
"""

from __future__ import annotations

import csv
import hashlib
import multiprocessing
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROWS = 2
"""Rows per video: a 2-frame clip gives CLIP 2 rows whatever `--frames` asks."""
SHARD_VIDEOS = 8
"""`extract`'s default `--shard-size`: what `cache compact` has to merge."""
PREVALENCE = 0.4
SIGNAL_DIMS = 4
SIGNAL = 1.0
CHUNK_VIDEOS = 4096
"""Videos per unit of work (a multiple of SHARD_VIDEOS): one index transaction each."""
FOLDER_VIDEOS = 1000
"""Input files per folder, so no folder holds a million entries."""
BACKEND = "pyav upright"
"""What the index records per video: PyAV decoded it, nothing to turn (`VideoInfo.decoded_by`)."""
MARK = ".scale-bench"
"""Marks a folder as made by this module, so a rebuild may delete it and nothing else."""


@dataclass(frozen=True)
class SyntheticCache:
    """What `build` made, and how long it took."""

    root: Path
    cache: Path
    inputs: Path
    labels: Path
    n: int
    harmful: int
    family: str
    shards: int
    build_s: float


def clip_family():
    """The family `harmcache extract --random-init --extractors clip` writes with default
    options: the CLI's config, resolved on this machine's device, through the same extractor."""
    from harmcache.extract.config import ExtractConfig, resolve_device
    from harmcache.extract.pipeline import build_extractors
    from harmcache.store.family import Family

    config = ExtractConfig(extractors="clip", random_init=True)
    settings = config.settings(resolve_device(config.device, config.engine))
    [extractor] = build_extractors(config.extractors, settings)
    return Family.from_spec(extractor.spec())


def input_bytes(i: int, seed: int = 0) -> bytes:
    """The bytes of input `i`: 64 pseudo-random bytes, then `i`, so no two inputs collide."""
    head = hashlib.blake2b(f"harmcache-scale:{seed}:{i}".encode(), digest_size=64).digest()
    return head + i.to_bytes(8, "little")


def input_path(inputs: Path, i: int) -> Path:
    return inputs / f"{i // FOLDER_VIDEOS:04d}" / f"v{i:07d}.mp4"


def is_harmful(data: bytes) -> bool:
    return data[0] < PREVALENCE * 256


def build(
    workdir: str | Path,
    n: int,
    *,
    seed: int = 0,
    shard_videos: int = SHARD_VIDEOS,
    workers: int | None = None,
) -> SyntheticCache:
    """Write n inputs, their cache and a labels CSV under `workdir` (which must be new, empty,
    or an earlier build's: that is replaced)."""
    from harmcache.provenance import library_versions
    from harmcache.store.cache import FeatureCache

    if n < 1 or shard_videos < 1:
        raise ValueError(f"need at least one video and one per shard, got {n} and {shard_videos}")
    start = time.perf_counter()
    root = fresh_folder(Path(workdir))
    cache_dir, inputs, labels = root / "cache", root / "inputs", root / "labels.csv"
    family = clip_family()
    versions = library_versions()
    chunk = max(shard_videos, CHUNK_VIDEOS // shard_videos * shard_videos)
    tasks = [
        (str(root), first, min(chunk, n - first), seed, shard_videos)
        for first in range(0, n, chunk)
    ]
    workers = workers or min(len(tasks), os.cpu_count() or 1)
    harmful = shards = 0
    with FeatureCache(cache_dir, create=True) as cache, open(labels, "w", newline="") as out:
        cache.ensure_family(family)
        table = csv.writer(out)
        table.writerow(["path", "label"])
        for part in _results(tasks, workers, family, versions):
            # rowless 0: every synthetic video has its ROWS rows (the shards say so too).
            rows = [(family, f, ids, [BACKEND] * len(ids), versions, 0) for f, ids in part.shards]
            cache.index.add_shards(rows)
            where = [os.path.abspath(input_path(inputs, i)) for i in part.indices]
            # Sightings before the memo, as extraction planning records them.
            cache.record_sources(list(zip(where, part.ids)))
            cache.remember_identities(list(zip(where, part.stamps, part.ids)))
            for i, label in zip(part.indices, part.labels):
                table.writerow([input_path(Path("inputs"), i).as_posix(), label])
            harmful += sum(part.labels)
            shards += len(part.shards)
    os.sync()
    return SyntheticCache(
        root=root,
        cache=cache_dir,
        inputs=inputs,
        labels=labels,
        n=n,
        harmful=harmful,
        family=family.name,
        shards=shards,
        build_s=time.perf_counter() - start,
    )


def fresh_folder(folder: Path) -> Path:
    """`folder`, absolute and empty: made, or emptied when an earlier build made it."""
    folder = folder.resolve()
    if folder.exists() and any(folder.iterdir()):
        if not (folder / MARK).exists():
            raise FileExistsError(f"{folder} is not empty and was not made by bench/scale_data.py")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARK).write_text("made by bench/scale_data.py; a rebuild deletes this folder\n")
    return folder


# --- the work, in parallel -----------------------------------------------------------------


@dataclass
class _Part:
    indices: range
    ids: list[str]
    stamps: list[tuple[int, int, int]]
    labels: list[int]
    shards: list[tuple[str, list[str]]]


def _results(tasks: list[tuple], workers: int, family, versions: dict):
    if workers <= 1:
        for task in tasks:
            yield _write_part(*task, family=family, versions=versions)
        return
    # spawn: the parent has imported torch (for the device), whose threads a fork would copy.
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, _init_worker, (family, versions)) as pool:
        yield from pool.imap(_write_part_in_worker, tasks)


_WORKER: dict = {}


def _init_worker(family, versions: dict) -> None:
    _WORKER.update(family=family, versions=versions)


def _write_part_in_worker(task: tuple) -> _Part:
    return _write_part(*task, **_WORKER)


def _write_part(
    root: str, first: int, count: int, seed: int, shard_videos: int, *, family, versions: dict
) -> _Part:
    """Inputs [first, first + count) on disk and their shards in the family's folder."""
    from harmcache.store.atomic import temporary_name
    from harmcache.store.shard import shard_name, write_shard_file
    from harmcache.types import FeatureRecord, VideoFeatures, VideoInfo

    inputs = Path(root) / "inputs"
    folder = Path(root) / "cache" / "features" / family.name
    info = VideoInfo(ROWS, 1.0, float(ROWS), 64, 32, "pyav", "upright")
    frame_index = np.arange(ROWS, dtype=np.int64)
    timestamp = np.arange(ROWS, dtype=np.float64)
    part = _Part(range(first, first + count), [], [], [], [])
    for at in range(first, first + count, shard_videos):
        items = []
        rng = np.random.default_rng([seed, at])
        for i in range(at, min(at + shard_videos, first + count)):
            data = input_bytes(i, seed)
            path = input_path(inputs, i)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            st = os.stat(path)
            vid = hashlib.sha256(data).hexdigest()
            label = int(is_harmful(data))
            features = rng.standard_normal((ROWS, 512), dtype=np.float32)
            if label:
                features[:, :SIGNAL_DIMS] += SIGNAL
            record = FeatureRecord(features, frame_index, timestamp)
            items.append(VideoFeatures(vid, info, os.path.abspath(path), record))
            part.ids.append(vid)
            part.stamps.append((st.st_size, st.st_mtime_ns, st.st_ino))
            part.labels.append(label)
        ids = [item.video_id for item in items]
        final = folder / shard_name(ids)
        tmp = temporary_name(final)
        write_shard_file(tmp, family, items, versions=versions)
        os.replace(tmp, final)
        part.shards.append((final.name, ids))
    return part
