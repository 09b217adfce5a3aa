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
several small datasets per video. Format_version 1 shards (a group per video) still read, through
legacy_v1.py.

This module owns the layout, a shard's name, writing it and its header; block.py reads it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from harmcache.hashing import canonical_json
from harmcache.paths import stored
from harmcache.provenance import library_versions
from harmcache.store.atomic import publish, temporary_name
from harmcache.store.family import Family
from harmcache.types import VideoFeatures

FORMAT = "harmcache-shard"
FORMAT_VERSION = 2
GROUPED_VERSION = 1
"""The original layout: one HDF5 group per video (read by legacy_v1.py)."""
CORE_DATASETS = ("features", "frame_index", "timestamp")
CORE_DTYPES = {"features": np.float32, "frame_index": np.int64, "timestamp": np.float64}
INFO_COLUMNS = ("n_frames", "fps", "duration", "width", "height", "backend", "display")
INFO_DTYPES = {"n_frames": np.int64, "fps": np.float64, "duration": np.float64,
               "width": np.int64, "height": np.int64}  # fmt: skip
STRING_COLUMNS = ("video_id", "source_path", "backend", "display")
OPTIONAL_COLUMNS = {"display": ""}
"""Columns that shards written before them lack, and the value they read as there."""
STR_DTYPE = h5py.string_dtype("utf-8")


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
    columns = shard_columns(items)  # validates before any file exists
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
    columns = columns or shard_columns(items)
    ids = [item.video_id for item in items]
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        family.write_attrs(f.attrs)
        f.attrs.create("video_ids", np.array(ids, dtype=object), dtype=STR_DTYPE)
        backends = [item.info.decoded_by for item in items]
        f.attrs.create("backends", np.array(backends, dtype=object), dtype=STR_DTYPE)
        versions = library_versions() if versions is None else versions
        f.attrs["versions"] = canonical_json(versions)
        # How many videos have no rows: the index keeps it, so a check for rowless videos
        # opens only the shards that have some.
        f.attrs["rowless"] = int((np.asarray(columns["videos"]["length"]) == 0).sum())
        for key in CORE_DATASETS:
            f.create_dataset(key, data=columns["rows"][key])
        table = f.create_group("videos")
        for key, values in columns["videos"].items():
            if key in STRING_COLUMNS:
                table.create_dataset(key, data=np.array(values, dtype=object), dtype=STR_DTYPE)
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


def shard_columns(items: list[VideoFeatures]) -> dict:
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
        "features": concat(feats, (0, *width), np.float32),
        "frame_index": concat([r.frame_index for r in records], (0,), np.int64),
        "timestamp": concat([r.timestamp for r in records], (0,), np.float64),
    }
    # A name that is not UTF-8 is kept as its raw bytes (see harmcache/paths.py).
    sources = [stored(item.source_path) for item in items]
    videos: dict[str, object] = {"video_id": ids, "source_path": sources}
    for key in INFO_COLUMNS:
        values = [getattr(item.info, key) for item in items]
        videos[key] = values if key in STRING_COLUMNS else np.array(values, INFO_DTYPES[key])
    videos["offset"] = offsets_of(lengths)
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
        extras[key] = (np.concatenate(parts), offsets_of(length), length)
    return {"rows": rows, "videos": videos, "extras": extras}


def concat(parts: list, empty_shape: tuple, dtype) -> np.ndarray:
    """`parts` concatenated as `dtype`; an empty array of `empty_shape` when there are none."""
    if not parts:
        return np.zeros(empty_shape, dtype)
    return np.concatenate([np.asarray(p, dtype=dtype) for p in parts])


def offsets_of(lengths: np.ndarray) -> np.ndarray:
    """Where each of the videos' rows start, laid end to end: the running sum of `lengths`."""
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
    rowless: int | None = None
    """Videos with no rows (None: not recorded, in shards older than the attribute)."""


def read_header(path: Path) -> ShardHeader:
    """The root attributes alone: cheap, whatever the shard holds."""
    with h5py.File(path, "r") as f:
        return header_of(f, path)


def header_of(f: h5py.File, path: Path) -> ShardHeader:
    """`read_header` of a shard already open (a reader that wants its arrays too opens once)."""
    if f.attrs.get("format") != FORMAT:
        raise ValueError(f"{path.name} is not a harmcache shard")
    family = Family.from_attrs(f.attrs)
    ids, version = read_layout(f, path)
    backends = strings(f.attrs["backends"]) if "backends" in f.attrs else [""] * len(ids)
    versions = json.loads(f.attrs["versions"]) if "versions" in f.attrs else {}
    rowless = int(f.attrs["rowless"]) if "rowless" in f.attrs else None
    return ShardHeader(family, ids, backends, versions, version, rowless)


def read_layout(f: h5py.File, path: Path) -> tuple[list[str], int]:
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
    return strings(f.attrs["video_ids"]), version


def strings(values) -> list[str]:
    """An HDF5 string array as a list of str, whether h5py gives bytes or str."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]
