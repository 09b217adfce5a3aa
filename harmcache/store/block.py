"""A `ShardBlock`: some or all videos of one shard as concatenated arrays, and how a columnar
shard (format_version 2) is read into one in a few large reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import h5py
import numpy as np
from h5py import h5d, h5s

from harmcache.paths import restored
from harmcache.store.shard import (
    CORE_DATASETS,
    INFO_COLUMNS,
    OPTIONAL_COLUMNS,
    STR_DTYPE,
    STRING_COLUMNS,
    offsets_of,
)
from harmcache.types import FeatureRecord, VideoFeatures, VideoInfo

READ_COST_BYTES = 256 * 1024
"""What one extra HDF5 read costs, in bytes of sequential reading: a few scattered videos are
read slice by slice, many are read as the whole array and picked out in memory."""
Allocator = Callable[[tuple[int, ...], np.dtype], np.ndarray]
"""`alloc(shape, dtype)` -> an uninitialised array: how a reader that recycles memory asks for
the features array of a block."""


@dataclass
class ShardBlock:
    """Some or all videos of one shard as concatenated arrays: video i's rows are
    `features[offsets[i] : offsets[i] + lengths[i]]`. Videos are in shard order."""

    family: str
    shard: str
    video_ids: list[str]
    offsets: np.ndarray
    """(n,) int64 into the row arrays below."""
    lengths: np.ndarray
    """(n,) int64 rows per video."""
    features: np.ndarray
    """(R, D) float32, R = lengths.sum()."""
    frame_index: np.ndarray
    """(R,) int64."""
    timestamp: np.ndarray
    """(R,) float64."""
    info: dict[str, np.ndarray]
    """(n,) per-video columns: source_path, n_frames, fps, duration, width, height, backend."""
    extras: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    """name → (values, offsets, lengths), like the rows; empty unless asked for."""

    def __len__(self) -> int:
        return len(self.video_ids)

    def videos(self) -> list[VideoFeatures]:
        """One `VideoFeatures` per video; their arrays are views of the block's."""
        infos = zip(*(self.info[k].tolist() for k in INFO_COLUMNS))
        sources = self.info["source_path"].tolist()
        bounds = zip(self.offsets.tolist(), (self.offsets + self.lengths).tolist())
        extras = [
            (key, values, offset.tolist(), (offset + length).tolist())
            for key, (values, offset, length) in self.extras.items()
        ]
        feats, index, stamps = self.features, self.frame_index, self.timestamp
        out = []
        for i, (vid, info, source, (a, b)) in enumerate(
            zip(self.video_ids, infos, sources, bounds)
        ):
            more = {key: v[s[i] : e[i]] for key, v, s, e in extras}
            record = FeatureRecord(feats[a:b], index[a:b], stamps[a:b], more)
            out.append(VideoFeatures(vid, VideoInfo(*info), source, record))
        return out


def columnar_block(
    f: h5py.File,
    ids: list[str],
    positions: np.ndarray,
    extras: bool,
    family: str,
    name: str,
    columns: tuple[str, ...] | None = None,
    alloc: Allocator = np.empty,
) -> ShardBlock:
    """The videos at `positions` (sorted) of the columnar shard `f` whose ids are `ids`.
    `columns`: the per-video columns to read (None: all); `alloc` makes the features array."""
    table = f["videos"]
    offset, length = read_whole(f, "videos/offset"), read_whole(f, "videos/length")
    every = len(positions) == len(ids)
    runs = None if every else _runs(offset[positions], length[positions])
    sliced = runs is not None and _sliced(f["features"], runs)
    rows = {key: _read_rows(f, key, runs, sliced) for key in CORE_DATASETS[1:]}
    rows["features"] = _read_rows(f, "features", runs, sliced, alloc)
    info = {}
    for key in (*INFO_COLUMNS, "source_path") if columns is None else columns:
        if key in OPTIONAL_COLUMNS and key not in table:
            info[key] = np.full(len(positions), OPTIONAL_COLUMNS[key], dtype=object)
            continue
        column = read_whole(table, key, text=key in STRING_COLUMNS)
        info[key] = column if every else column[positions]
    more = {}
    if extras and "extras" in f:
        for key, group in f["extras"].items():
            e_off = read_whole(group, "offset")[positions]
            e_len = read_whole(group, "length")[positions]
            e_runs = None if every else _runs(e_off, e_len)
            values = _read_rows(group, "values", e_runs, sliced)
            more[key] = (values, offsets_of(e_len), e_len)
    return ShardBlock(
        family,
        name,
        [ids[i] for i in positions],
        offsets_of(length[positions]),
        length[positions],
        rows["features"],
        rows["frame_index"],
        rows["timestamp"],
        info,
        more,
    )


def read_whole(
    group: h5py.Group, name: str, *, text: bool = False, alloc: Allocator = np.empty
) -> np.ndarray:
    """A dataset read whole through h5py's low-level API, which costs a fraction of a
    high-level read: a shard has a dozen small columns, so that overhead shows. `text`: a
    column of UTF-8 strings, returned as an object array of str."""
    ds = h5d.open(group.id, name.encode())
    out = alloc(ds.shape, STR_DTYPE if text else ds.dtype)
    if out.size:
        ds.read(h5s.ALL, h5s.ALL, out)
    if text:  # `restored`: a source_path of a name that is not UTF-8 holds its raw bytes
        out[:] = [restored(v) for v in out.tolist()]
    return out


def _runs(offset: np.ndarray, length: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges covering the chosen videos (in shard order), neighbours merged."""
    runs: list[list[int]] = []
    for a, n in zip(offset.tolist(), length.tolist()):
        if runs and runs[-1][1] == a:
            runs[-1][1] = a + n
        elif n:
            runs.append([a, a + n])
    return [(a, b) for a, b in runs]


def _sliced(ds: h5py.Dataset, runs: list[tuple[int, int]]) -> bool:
    """Whether reading `runs` one by one beats one read of the whole of `ds` (the features:
    the other row arrays follow the same plan)."""
    row_bytes = ds.dtype.itemsize * int(np.prod(ds.shape[1:], dtype=np.int64))
    wanted = sum(b - a for a, b in runs)
    return wanted * row_bytes + len(runs) * READ_COST_BYTES < ds.shape[0] * row_bytes


def _read_rows(
    group: h5py.Group,
    name: str,
    runs: list[tuple[int, int]] | None,
    sliced: bool,
    alloc: Allocator = np.empty,
) -> np.ndarray:
    """The rows of `runs` (None: every row) of `group[name]`, concatenated: read run by run
    when `sliced`, else as one read of the whole dataset picked out in memory. The result is
    made by `alloc` when it is one read (every row, or one run)."""
    if runs is None:
        return read_whole(group, name, alloc=alloc)
    if not runs:
        ds = group[name]
        return np.zeros((0, *ds.shape[1:]), ds.dtype)
    if sliced:
        ds = group[name]
        if len(runs) == 1:
            (a, b), out = runs[0], alloc((runs[0][1] - runs[0][0], *ds.shape[1:]), ds.dtype)
            if len(out):
                ds.read_direct(out, np.s_[a:b])
            return out
        parts = [ds[a:b] for a, b in runs]
    else:
        whole = read_whole(group, name)
        parts = [whole[a:b] for a, b in runs]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
