"""Rewriting shards in the current layout, each checked bit for bit before it is committed:
`cache migrate` (one older shard, same name) and `cache compact` (small shards into one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harmcache.store.atomic import publish, temporary_name
from harmcache.store.family import Family
from harmcache.store.reader import read_shard, read_videos
from harmcache.store.shard import (
    CORE_DATASETS,
    FORMAT_VERSION,
    ShardHeader,
    read_header,
    shard_columns,
    shard_name,
    write_shard_file,
)
from harmcache.types import VideoFeatures


def migrate_shard(path: Path) -> bool:
    """Rewrite a shard of an older layout in the current one, keeping its name, attributes
    and every array bit for bit, with the same commit as a new shard (temporary name, fsync,
    rename). Returns False, touching nothing, when it is already current."""
    header = read_header(path)
    if header.format_version >= FORMAT_VERSION:
        return False
    before = read_videos(path)
    items = [before[vid] for vid in header.video_ids]
    _rewrite(path, header.family, items, header.versions)
    return True


def merge_shards(paths: list[Path], folder: Path) -> ShardHeader:
    """Write the videos of `paths` (shards of one family made under one set of library
    versions) into one shard in `folder`, with the same commit as a new shard, and check that
    every video reads back bit for bit. A video held by more than one of them (a merge
    interrupted before the old shards were deleted) is written once. The inputs are left in
    place: the caller repoints the index, then deletes them. Returns the new shard's header."""
    items: dict[str, VideoFeatures] = {}
    first = None
    for path in paths:
        header, videos = read_shard(path)
        first = first or header
        if header.family.name != first.family.name or header.versions != first.versions:
            raise ValueError("only shards of one family and one set of library versions merge")
        for vid in header.video_ids:
            items.setdefault(vid, videos[vid])
    family, versions = first.family, first.versions
    merged = list(items.values())
    _rewrite(folder / shard_name(list(items)), family, merged, versions)
    rowless = sum(len(v.record.features) == 0 for v in merged)
    backends = [v.info.decoded_by for v in merged]
    return ShardHeader(family, list(items), backends, versions, rowless=rowless)


def _rewrite(final: Path, family: Family, items: list[VideoFeatures], versions: dict) -> None:
    """Commit `items` as the shard `final` in the current layout, keeping `versions`, once
    every video reads back from the temporary file bit for bit."""
    columns = shard_columns(items)
    tmp = temporary_name(final)
    try:
        write_shard_file(tmp, family, items, versions=versions, columns=columns)
        after = read_videos(tmp)
        changed = [v.video_id for v in items if not _same_video(v, after[v.video_id])]
        if changed:
            raise ValueError(f"video {changed[0]} would not read back bit for bit")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    publish(tmp, final)


def _same_video(a: VideoFeatures, b: VideoFeatures) -> bool:
    ra, rb = a.record, b.record
    pairs = [(getattr(ra, k), getattr(rb, k)) for k in CORE_DATASETS]
    pairs += [(ra.extras[k], rb.extras.get(k)) for k in ra.extras]
    return (
        a.info == b.info
        and a.source_path == b.source_path
        and ra.extras.keys() == rb.extras.keys()
        and all(_same_bits(x, y) for x, y in pairs)
    )


def _same_bits(a: np.ndarray, b: np.ndarray | None) -> bool:
    if b is None or a.dtype != b.dtype or a.shape != b.shape:
        return False
    return a.tobytes() == b.tobytes()
