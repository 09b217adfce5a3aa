"""Reading one shard file, whichever layout it has: as a `ShardBlock`, as one `VideoFeatures`
per video, or just its row counts. The columnar layout is read by block.py, the first one by
legacy_v1.py."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import h5py
import numpy as np

from harmcache.store import legacy_v1
from harmcache.store.block import Allocator, ShardBlock, columnar_block, read_whole
from harmcache.store.shard import GROUPED_VERSION, ShardHeader, header_of, read_layout
from harmcache.types import VideoFeatures


def read_block(
    path: Path,
    video_ids: list[str] | None = None,
    *,
    extras: bool = False,
    family: str = "",
    info: tuple[str, ...] | None = None,
    alloc: Allocator | None = None,
) -> ShardBlock:
    """The videos `video_ids` (default: all) of one shard, in shard order, as concatenated
    arrays. A few videos of a big shard cost a read of their own rows only. `info`: the
    per-video columns to read (default: all; each costs a dataset read, which shows on small
    shards). `alloc(shape, dtype)` makes the features array (a reader that recycles its
    blocks' memory passes its own: fresh pages cost as much as the read)."""
    with h5py.File(path, "r") as f:
        ids, version, where = _known_layout(f, path)
        positions = _positions(ids, video_ids, path, where)
        family = family or str(f.attrs["family"])
        if version == GROUPED_VERSION:
            return legacy_v1.grouped_block(f, ids, positions, extras, family, path.name)
        return columnar_block(f, ids, positions, extras, family, path.name, info, alloc or np.empty)


def row_counts(path: Path) -> dict[str, int]:
    """video id → its number of rows, from the shard's video table alone."""
    with h5py.File(path, "r") as f:
        ids, version = read_layout(f, path)
        if version == GROUPED_VERSION:
            return legacy_v1.grouped_row_counts(f, ids)
        return dict(zip(ids, read_whole(f, "videos/length").tolist()))


def read_videos(
    path: Path, video_ids: list[str] | None = None, *, extras: bool = True
) -> dict[str, VideoFeatures]:
    """The videos `video_ids` (default: all) of one shard, one `VideoFeatures` each."""
    with h5py.File(path, "r") as f:
        ids, version = read_layout(f, path)
        return _videos(f, path, ids, version, video_ids, extras)


def read_shard(path: Path) -> tuple[ShardHeader, dict[str, VideoFeatures]]:
    """A shard's header and every video, the file opened once (compaction reads each small
    shard whole: a second open would cost as much as its arrays)."""
    with h5py.File(path, "r") as f:
        header = header_of(f, path)
        return header, _videos(f, path, header.video_ids, header.format_version, None, True)


def _videos(
    f: h5py.File,
    path: Path,
    ids: list[str],
    version: int,
    video_ids: list[str] | None,
    extras: bool,
) -> dict[str, VideoFeatures]:
    if version == GROUPED_VERSION:
        wanted = ids if video_ids is None else video_ids
        _positions(ids, wanted, path)
        return legacy_v1.grouped_videos(f, wanted, extras=extras)
    positions = _positions(ids, video_ids, path)
    block = columnar_block(f, ids, positions, extras, "", path.name)
    return {v.video_id: v for v in block.videos()}


_LAYOUTS: OrderedDict[tuple, tuple[list[str], int, dict[str, int]]] = OrderedDict()
"""(path, size, mtime_ns, inode) → a shard's ids, format_version and id → position: a reader
taking a big shard a slice at a time decodes its id list once, not once per slice."""


def _known_layout(f: h5py.File, path: Path) -> tuple[list[str], int, dict[str, int]]:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _LAYOUTS:
        ids, version = read_layout(f, path)
        _LAYOUTS[key] = (ids, version, {vid: i for i, vid in enumerate(ids)})
        while len(_LAYOUTS) > 256:
            _LAYOUTS.popitem(last=False)
    _LAYOUTS.move_to_end(key)
    return _LAYOUTS[key]


def _positions(
    ids: list[str], wanted: list[str] | None, path: Path, where: dict[str, int] | None = None
) -> np.ndarray:
    """The sorted positions in the shard of the videos `wanted` (None: all of them); a
    `KeyError` naming one it does not hold."""
    if wanted is None:
        return np.arange(len(ids))
    where = where if where is not None else {vid: i for i, vid in enumerate(ids)}
    missing = [v for v in wanted if v not in where]
    if missing:
        raise KeyError(f"{path.name} does not hold the video {missing[0]}")
    return np.unique(np.array([where[v] for v in wanted], dtype=np.int64))
