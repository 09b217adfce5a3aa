"""HDF5 shards: one file holds several videos' features from one family.

Layout, format_version 2 (columnar; readable with plain h5py or h5ls; see docs/cache-format.md):

    /                       attrs: format, format_version, family, extractor, fingerprint,
                                   spec (JSON), random_init, video_ids, backends (parallel to
                                   video_ids), versions (JSON: the libraries that made it)
    /features               (R, D) float32   every video's rows, concatenated in video_ids order
    /frame_index            (R,)   int64
    /timestamp              (R,)   float64
    /videos/<column>        (n,)   one entry per video, parallel to video_ids: video_id,
                                   source_path, n_frames, fps, duration, width, height, backend,
                                   display (absent in older shards: read as ""),
                                   offset and length (the video's rows are [offset, offset+length))
    /extras/<name>/values   (N, ...) extractor-specific rows (YOLO detections, SlowFast window
                                   frames), concatenated the same way
    /extras/<name>/offset, /extras/<name>/length   (n,) int64, parallel to video_ids

One contiguous dataset per array makes a shard cost a handful of reads rather than a group and
several small datasets per video. Format_version 1 shards (a group per video) still read.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from h5py import h5d, h5s

from harmcache.hashing import canonical_json
from harmcache.paths import restored, stored
from harmcache.provenance import library_versions
from harmcache.store.atomic import publish, temporary_name
from harmcache.store.family import Family
from harmcache.types import FeatureRecord, VideoFeatures, VideoInfo

FORMAT = "harmcache-shard"
FORMAT_VERSION = 2
GROUPED_VERSION = 1
"""The original layout: one HDF5 group per video."""
CORE_DATASETS = ("features", "frame_index", "timestamp")
CORE_DTYPES = {"features": np.float32, "frame_index": np.int64, "timestamp": np.float64}
INFO_COLUMNS = ("n_frames", "fps", "duration", "width", "height", "backend", "display")
INFO_DTYPES = {"n_frames": np.int64, "fps": np.float64, "duration": np.float64,
               "width": np.int64, "height": np.int64}  # fmt: skip
STRING_COLUMNS = ("video_id", "source_path", "backend", "display")
OPTIONAL_COLUMNS = {"display": ""}
"""Columns that shards written before them lack, and the value they read as there."""
READ_COST_BYTES = 256 * 1024
"""What one extra HDF5 read costs, in bytes of sequential reading: a few scattered videos are
read slice by slice, many are read as the whole array and picked out in memory."""
_STR = h5py.string_dtype("utf-8")
Allocator = Callable[[tuple[int, ...], np.dtype], np.ndarray]


def shard_name(video_ids: list[str]) -> str:
    """Derived from the videos it holds, so a retried writer produces the same name, never a
    second copy."""
    digest = hashlib.sha256("\n".join(sorted(video_ids)).encode()).hexdigest()
    return f"shard-{digest[:20]}.h5"


# --- writing -------------------------------------------------------------------------------


def write_shard(
    folder: Path,
    family: Family,
    items: list[VideoFeatures],
    *,
    versions: dict | None = None,
    name: str | None = None,
) -> Path:
    """Write and atomically commit a shard; returns its final path. `versions` (default: this
    process's libraries) and `name` (default: derived from the ids) let a migration keep the
    shard's provenance and file name."""
    final = folder / (name or shard_name([item.video_id for item in items]))
    columns = _columns(items)  # validates before any file exists
    tmp = temporary_name(final)
    write_shard_file(tmp, family, items, versions=versions, columns=columns)
    publish(tmp, final)
    return final


def write_shard_file(
    path: Path,
    family: Family,
    items: list[VideoFeatures],
    *,
    versions: dict | None = None,
    columns: dict | None = None,
) -> None:
    """Write a shard in the current layout at `path` (no commit: see `write_shard`)."""
    columns = columns or _columns(items)
    ids = [item.video_id for item in items]
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["family"] = family.name
        f.attrs["extractor"] = family.extractor
        f.attrs["fingerprint"] = family.fingerprint
        f.attrs["spec"] = canonical_json(family.spec)
        f.attrs["random_init"] = family.random_init
        f.attrs.create("video_ids", np.array(ids, dtype=object), dtype=_STR)
        backends = [item.info.decoded_by for item in items]
        f.attrs.create("backends", np.array(backends, dtype=object), dtype=_STR)
        versions = library_versions() if versions is None else versions
        f.attrs["versions"] = canonical_json(versions)
        for key in CORE_DATASETS:
            f.create_dataset(key, data=columns["rows"][key])
        table = f.create_group("videos")
        for key, values in columns["videos"].items():
            if key in STRING_COLUMNS:
                table.create_dataset(key, data=np.array(values, dtype=object), dtype=_STR)
            else:
                table.create_dataset(key, data=values)
        if columns["extras"]:
            extras = f.create_group("extras")
            for key, (values, offset, length) in columns["extras"].items():
                group = extras.create_group(key)
                group.create_dataset("values", data=values)
                group.create_dataset("offset", data=offset)
                group.create_dataset("length", data=length)
        f.flush()


def _columns(items: list[VideoFeatures]) -> dict:
    """The shard's arrays, concatenated; a `ValueError` for what one shard cannot hold."""
    ids = [item.video_id for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError("a shard cannot hold the same video twice")
    records = [item.record for item in items]
    feats = [np.asarray(r.features, dtype=np.float32) for r in records]
    widths = {x.shape[1:] for x in feats}
    if any(x.ndim != 2 for x in feats) or len(widths) > 1:
        shapes = sorted({str(x.shape) for x in feats})
        raise ValueError(f"a shard's features must be 2-d of one width, got {', '.join(shapes)}")
    width = widths.pop() if widths else (0,)
    lengths = np.array([len(x) for x in feats], dtype=np.int64)
    for r, x in zip(records, feats):
        if np.shape(r.frame_index) != (len(x),) or np.shape(r.timestamp) != (len(x),):
            raise ValueError("frame_index and timestamp need one entry per feature row")
    rows = {
        "features": _concat(feats, (0, *width), np.float32),
        "frame_index": _concat([r.frame_index for r in records], (0,), np.int64),
        "timestamp": _concat([r.timestamp for r in records], (0,), np.float64),
    }
    # A name that is not UTF-8 is kept as its raw bytes (see harmcache/paths.py).
    sources = [stored(item.source_path) for item in items]
    videos: dict[str, object] = {"video_id": ids, "source_path": sources}
    for key in INFO_COLUMNS:
        values = [getattr(item.info, key) for item in items]
        videos[key] = values if key in STRING_COLUMNS else np.array(values, INFO_DTYPES[key])
    videos["offset"] = _offsets(lengths)
    videos["length"] = lengths
    extras = {}
    keys = {tuple(sorted(r.extras)) for r in records}
    if len(keys) > 1:
        raise ValueError("every video of a shard must carry the same extras, got " + str(keys))
    for key in sorted(keys.pop()) if keys else []:
        parts = [np.asarray(r.extras[key]) for r in records]
        kinds = {(x.dtype.str, x.shape[1:]) for x in parts}
        if len(kinds) > 1 or parts[0].ndim == 0:
            raise ValueError(f"extras {key!r} must share one dtype and row shape, got {kinds}")
        length = np.array([len(x) for x in parts], dtype=np.int64)
        extras[key] = (np.concatenate(parts), _offsets(length), length)
    return {"rows": rows, "videos": videos, "extras": extras}


def _concat(parts: list, empty_shape: tuple, dtype) -> np.ndarray:
    if not parts:
        return np.zeros(empty_shape, dtype)
    return np.concatenate([np.asarray(p, dtype=dtype) for p in parts])


def _offsets(lengths: np.ndarray) -> np.ndarray:
    out = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=out[1:])
    return out


# --- headers -------------------------------------------------------------------------------


@dataclass
class ShardHeader:
    family: Family
    video_ids: list[str]
    backends: list[str] = field(default_factory=list)
    """Decode backend per video, parallel to video_ids (empty strings in older shards)."""
    versions: dict = field(default_factory=dict)
    """Library versions that made the shard (empty in older shards)."""
    format_version: int = FORMAT_VERSION


def read_header(path: Path) -> ShardHeader:
    """The root attributes alone: cheap, whatever the shard holds."""
    with h5py.File(path, "r") as f:
        return _header(f, path)


def _header(f: h5py.File, path: Path) -> ShardHeader:
    if f.attrs.get("format") != FORMAT:
        raise ValueError(f"{path.name} is not a harmcache shard")
    spec = json.loads(f.attrs["spec"])
    family = Family(str(f.attrs["extractor"]), str(f.attrs["fingerprint"]), spec)
    ids, version = _layout(f, path)
    backends = _strings(f.attrs["backends"]) if "backends" in f.attrs else [""] * len(ids)
    versions = json.loads(f.attrs["versions"]) if "versions" in f.attrs else {}
    return ShardHeader(family, ids, backends, versions, version)


def _layout(f: h5py.File, path: Path) -> tuple[list[str], int]:
    """The video ids and format_version: all a reader needs of the header (three attributes,
    not the eight of `read_header`; they cost a visible share of reading a small shard)."""
    if f.attrs.get("format") != FORMAT:
        raise ValueError(f"{path.name} is not a harmcache shard")
    version = int(f.attrs.get("format_version", GROUPED_VERSION))
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path.name} has shard format_version {version}; this harmcache reads up to "
            f"{FORMAT_VERSION} (upgrade harmcache)"
        )
    return _strings(f.attrs["video_ids"]), version


def _strings(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


# --- reading -------------------------------------------------------------------------------


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
            return _grouped_block(f, ids, positions, extras, family, path.name)
        return _columnar_block(
            f, ids, positions, extras, family, path.name, info, alloc or np.empty
        )


def row_counts(path: Path) -> dict[str, int]:
    """video id → its number of rows, from the shard's video table alone."""
    with h5py.File(path, "r") as f:
        ids, version = _layout(f, path)
        if version == GROUPED_VERSION:
            return {vid: int(f[vid]["features"].shape[0]) for vid in ids}
        return dict(zip(ids, _whole(f, "videos/length").tolist()))


def read_videos(
    path: Path, video_ids: list[str] | None = None, *, extras: bool = True
) -> dict[str, VideoFeatures]:
    """The videos `video_ids` (default: all) of one shard, one `VideoFeatures` each."""
    with h5py.File(path, "r") as f:
        ids, version = _layout(f, path)
        if version == GROUPED_VERSION:
            wanted = ids if video_ids is None else video_ids
            _positions(ids, wanted, path)
            out = {}
            for vid in wanted:
                record, info, source = read_group(f[vid], extras=extras)
                out[vid] = VideoFeatures(vid, info, source, record)
            return out
        positions = _positions(ids, video_ids, path)
        block = _columnar_block(f, ids, positions, extras, "", path.name)
    return {v.video_id: v for v in block.videos()}


_LAYOUTS: OrderedDict[tuple, tuple[list[str], int, dict[str, int]]] = OrderedDict()
"""(path, size, mtime_ns, inode) → a shard's ids, format_version and id → position: a reader
taking a big shard a slice at a time decodes its id list once, not once per slice."""


def _known_layout(f: h5py.File, path: Path) -> tuple[list[str], int, dict[str, int]]:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _LAYOUTS:
        ids, version = _layout(f, path)
        _LAYOUTS[key] = (ids, version, {vid: i for i, vid in enumerate(ids)})
        while len(_LAYOUTS) > 256:
            _LAYOUTS.popitem(last=False)
    _LAYOUTS.move_to_end(key)
    return _LAYOUTS[key]


def _positions(
    ids: list[str], wanted: list[str] | None, path: Path, where: dict[str, int] | None = None
) -> np.ndarray:
    if wanted is None:
        return np.arange(len(ids))
    where = where if where is not None else {vid: i for i, vid in enumerate(ids)}
    missing = [v for v in wanted if v not in where]
    if missing:
        raise KeyError(f"{path.name} does not hold the video {missing[0]}")
    return np.unique(np.array([where[v] for v in wanted], dtype=np.int64))


def _columnar_block(
    f: h5py.File,
    ids: list[str],
    positions: np.ndarray,
    extras: bool,
    family: str,
    name: str,
    columns: tuple[str, ...] | None = None,
    alloc: Allocator = np.empty,
) -> ShardBlock:
    table = f["videos"]
    offset, length = _whole(f, "videos/offset"), _whole(f, "videos/length")
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
        column = _whole(table, key, text=key in STRING_COLUMNS)
        info[key] = column if every else column[positions]
    more = {}
    if extras and "extras" in f:
        for key, group in f["extras"].items():
            e_off = _whole(group, "offset")[positions]
            e_len = _whole(group, "length")[positions]
            e_runs = None if every else _runs(e_off, e_len)
            values = _read_rows(group, "values", e_runs, sliced)
            more[key] = (values, _offsets(e_len), e_len)
    return ShardBlock(
        family,
        name,
        [ids[i] for i in positions],
        _offsets(length[positions]),
        length[positions],
        rows["features"],
        rows["frame_index"],
        rows["timestamp"],
        info,
        more,
    )


def _whole(
    group: h5py.Group, name: str, *, text: bool = False, alloc: Allocator = np.empty
) -> np.ndarray:
    """A dataset read whole through h5py's low-level API, which costs a fraction of a
    high-level read: a shard has a dozen small columns, so that overhead shows. `text`: a
    column of UTF-8 strings, returned as an object array of str."""
    ds = h5d.open(group.id, name.encode())
    out = alloc(ds.shape, _STR if text else ds.dtype)
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
        return _whole(group, name, alloc=alloc)
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
        whole = _whole(group, name)
        parts = [whole[a:b] for a, b in runs]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _grouped_block(
    f: h5py.File, ids: list[str], positions: np.ndarray, extras: bool, family: str, name: str
) -> ShardBlock:
    """A block gathered from a format_version 1 shard (one group per video)."""
    ids = [ids[i] for i in positions]
    videos = [read_group(f[vid], extras=extras) for vid in ids]
    records = [record for record, _, _ in videos]
    lengths = np.array([len(r.features) for r in records], dtype=np.int64)
    width = next((r.features.shape[1:] for r in records if r.features.ndim == 2), (0,))
    info: dict[str, np.ndarray] = {
        "source_path": np.array([source for _, _, source in videos], dtype=object)
    }
    for key in INFO_COLUMNS:
        values = [getattr(i, key) for _, i, _ in videos]
        info[key] = np.array(values, dtype=object if key in STRING_COLUMNS else INFO_DTYPES[key])
    more = {}
    for key in sorted(set.intersection(*(set(r.extras) for r in records))) if records else []:
        parts = [r.extras[key] for r in records]
        length = np.array([len(x) for x in parts], dtype=np.int64)
        more[key] = (np.concatenate(parts), _offsets(length), length)
    return ShardBlock(
        family,
        name,
        ids,
        _offsets(lengths),
        lengths,
        _concat([r.features for r in records], (0, *width), np.float32),
        _concat([r.frame_index for r in records], (0,), np.int64),
        _concat([r.timestamp for r in records], (0,), np.float64),
        info,
        more,
    )


def read_group(group: h5py.Group, *, extras: bool = True) -> tuple[FeatureRecord, VideoInfo, str]:
    """One video's record from a format_version 1 shard; `extras=False` skips the raw arrays
    (detections, window frames) that training never reads."""
    more = {k: group[k][()] for k in group if k not in CORE_DATASETS} if extras else {}
    record = FeatureRecord(
        group["features"][()], group["frame_index"][()], group["timestamp"][()], more
    )
    a = group.attrs
    info = VideoInfo(
        int(a["n_frames"]),
        float(a["fps"]),
        float(a["duration"]),
        int(a["width"]),
        int(a["height"]),
        str(a["backend"]),
        str(a.get("display", OPTIONAL_COLUMNS["display"])),
    )
    return record, info, str(a["source_path"])


# --- migrating and checking ----------------------------------------------------------------


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
    headers = [read_header(p) for p in paths]
    family, versions = headers[0].family, headers[0].versions
    if any(h.family.name != family.name or h.versions != versions for h in headers):
        raise ValueError("only shards of one family and one set of library versions merge")
    items: dict[str, VideoFeatures] = {}
    for path, header in zip(paths, headers):
        videos = read_videos(path)
        for vid in header.video_ids:
            items.setdefault(vid, videos[vid])
    merged = list(items.values())
    _rewrite(folder / shard_name(list(items)), family, merged, versions)
    return ShardHeader(family, list(items), [v.info.decoded_by for v in merged], versions)


def _rewrite(final: Path, family: Family, items: list[VideoFeatures], versions: dict) -> None:
    """Commit `items` as the shard `final` in the current layout, keeping `versions`, once
    every video reads back from the temporary file bit for bit."""
    columns = _columns(items)
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


def check_arrays(path: Path, header: ShardHeader, where: str, dim: int | None) -> list[str]:
    """Problems with a shard's arrays: missing datasets, dtypes and shapes, offsets that do
    not tile the rows, non-finite features. `where` prefixes each message."""
    with h5py.File(path, "r") as f:
        if header.format_version == GROUPED_VERSION:
            return _check_groups(f, header, where, dim)
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
    if _strings(f["videos/video_id"][()]) != ids:
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
    if not np.array_equal(offset, _offsets(length)) or int(length.sum()) != rows:
        return f"do not tile the {rows} rows end to end"
    return None


def _check_groups(f: h5py.File, header: ShardHeader, where: str, dim: int | None) -> list[str]:
    problems = []
    if set(f.keys()) != set(header.video_ids):
        problems.append(f"{where}: groups do not match the video_ids attribute")
    for vid in header.video_ids:
        if vid not in f:
            continue
        g = f[vid]
        try:
            feats, idx, ts = g["features"], g["frame_index"], g["timestamp"]
        except KeyError as exc:
            problems.append(f"{where}:{vid[:12]}: missing dataset {exc}")
            continue
        if feats.dtype != np.float32 or feats.ndim != 2:
            problems.append(
                f"{where}:{vid[:12]}: features must be 2-d float32, got {feats.dtype} {feats.shape}"
            )
            continue
        if dim is not None and feats.shape[1] != dim:
            problems.append(f"{where}:{vid[:12]}: features are {feats.shape[1]}-d, expected {dim}")
        if idx.shape != (feats.shape[0],) or ts.shape != (feats.shape[0],):
            problems.append(
                f"{where}:{vid[:12]}: frame_index/timestamp do not match {feats.shape[0]} rows"
            )
        if not np.isfinite(feats[()]).all():
            problems.append(f"{where}:{vid[:12]}: features hold NaN or inf")
    return problems
