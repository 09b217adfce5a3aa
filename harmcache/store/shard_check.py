"""What `cache verify` checks in one shard: its header against its folder, duplicates across
the family, and every array (datasets, dtypes, shapes, offsets, finite features)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from harmcache.hashing import canonical_json
from harmcache.store import legacy_v1
from harmcache.store.family import Family
from harmcache.store.index import Index
from harmcache.store.shard import (
    CORE_DATASETS,
    GROUPED_VERSION,
    INFO_COLUMNS,
    ShardHeader,
    offsets_of,
    read_header,
    strings,
)


class Homes:
    """Where the index says each video of one family lives, asked shard by shard: a video a
    shard holds but the index homes elsewhere is a duplicate (the index keeps the first home by
    shard name, the order `verify` walks in). Counts the videos homed in the shards checked,
    and keeps the few the index does not list."""

    def __init__(self, index: Index, family: str):
        self.index, self.family = index, family
        self.homed = 0
        self.unindexed: dict[str, str] = {}

    def duplicates(self, shard: str, ids: list[str]) -> list[tuple[str, str]]:
        """(video id, the shard that first holds it) for each of `ids` held elsewhere first."""
        where = self.index.shards_of(self.family, ids)
        out = []
        for vid in ids:
            home = where.get(vid) or self.unindexed.setdefault(vid, shard)
            if home == shard:
                self.homed += vid in where
            else:
                out.append((vid, home))
        return out


def verify_shard(shard: Path, family: str, homes: Homes, dims: dict[str, int]) -> list[str]:
    """Problems with the shard `shard` of the family folder `family`; `homes` says where the
    index puts each video, so a video held twice is named. `dims`: extractor → the feature
    width its rows must have."""
    where = f"{family}/{shard.name}"
    try:
        header = read_header(shard)
    except (OSError, ValueError, KeyError) as exc:
        return [f"{where}: cannot be read ({exc})"]
    problems = []
    if header.family.name != family:
        problems.append(f"{where}: belongs to family {header.family.name}, not {family}")
    if (
        canonical_json(header.family.spec)
        and header.family.fingerprint != Family.from_spec(header.family.spec).fingerprint
    ):
        problems.append(f"{where}: fingerprint does not match its spec")
    ids = header.video_ids
    if len(set(ids)) != len(ids):
        problems.append(f"{where}: holds a video twice")
    for vid, home in homes.duplicates(shard.name, list(dict.fromkeys(ids))):
        problems.append(f"{where}:{vid[:12]}: also held by {home} (duplicate)")
    try:
        problems += check_arrays(shard, header, where, dims.get(header.family.extractor))
    except (OSError, KeyError) as exc:
        problems.append(f"{where}: cannot be read ({exc})")
    return problems


def check_arrays(path: Path, header: ShardHeader, where: str, dim: int | None) -> list[str]:
    """Problems with a shard's arrays: missing datasets, dtypes and shapes, offsets that do
    not tile the rows, non-finite features. `where` prefixes each message."""
    with h5py.File(path, "r") as f:
        if header.format_version == GROUPED_VERSION:
            return legacy_v1.check_groups(f, header, where, dim)
        return _check_columns(f, header, where, dim)


def _check_columns(f: h5py.File, header: ShardHeader, where: str, dim: int | None) -> list[str]:
    ids, n = header.video_ids, len(header.video_ids)
    names = ["videos/" + c for c in ("video_id", "source_path", *INFO_COLUMNS, "offset", "length")]
    missing = [k for k in (*CORE_DATASETS, *names) if k not in f]
    if missing:
        return [f"{where}: missing dataset {missing[0]!r}"]
    problems = []
    short = [k for k in names if f[k].shape != (n,)]
    if short:
        return [f"{where}: {short[0]} has shape {f[short[0]].shape}, expected ({n},)"]
    if strings(f["videos/video_id"][()]) != ids:
        problems.append(f"{where}: the video table does not match the video_ids attribute")
    feats, idx, ts = (f[k] for k in CORE_DATASETS)
    if feats.dtype != np.float32 or feats.ndim != 2:
        got = f"{feats.dtype} {feats.shape}"
        return [*problems, f"{where}: features must be 2-d float32, got {got}"]
    rows = feats.shape[0]
    if dim is not None and feats.shape[1] != dim:
        problems.append(f"{where}: features are {feats.shape[1]}-d, expected {dim}")
    if (idx.dtype, idx.shape, ts.dtype, ts.shape) != (np.int64, (rows,), np.float64, (rows,)):
        problems.append(
            f"{where}: frame_index/timestamp must be int64/float64 with {rows} rows, "
            f"got {idx.dtype} {idx.shape} and {ts.dtype} {ts.shape}"
        )
    offset, length = f["videos/offset"][()], f["videos/length"][()]
    tiling = _tiling_problem(offset, length, rows)
    if tiling:
        return [*problems, f"{where}: videos/offset and videos/length {tiling}"]
    if "extras" in f:
        for key, group in f["extras"].items():
            parts = [k for k in ("values", "offset", "length") if k not in group]
            if parts:
                problems.append(f"{where}: extras/{key} has no {parts[0]!r}")
                continue
            e_off, e_len = group["offset"][()], group["length"][()]
            if e_off.shape != (n,) or e_len.shape != (n,):
                problems.append(f"{where}: extras/{key} offsets do not have one entry per video")
                continue
            tiling = _tiling_problem(e_off, e_len, len(group["values"]))
            if tiling:
                problems.append(f"{where}: extras/{key} offsets {tiling}")
    ends = offset + length
    bad: set[int] = set()
    step = max(1, (64 << 20) // max(1, feats.shape[1] * 4))  # 64 MiB of rows per read
    for start in range(0, rows, step):
        finite = np.isfinite(feats[start : start + step]).all(axis=1)
        rows_bad = start + np.flatnonzero(~finite)
        bad.update(np.searchsorted(ends, rows_bad, side="right").tolist())
    problems += [f"{where}:{ids[i][:12]}: features hold NaN or inf" for i in sorted(bad)]
    return problems


def _tiling_problem(offset: np.ndarray, length: np.ndarray, rows: int) -> str | None:
    """Why (offset, length) do not lay the videos end to end over `rows` rows, or None."""
    if offset.dtype.kind not in "iu" or length.dtype.kind not in "iu":
        return f"must be integers, got {offset.dtype} and {length.dtype}"
    if (length < 0).any():
        return "hold a negative length"
    if not np.array_equal(offset, offsets_of(length)) or int(length.sum()) != rows:
        return f"do not tile the {rows} rows end to end"
    return None
