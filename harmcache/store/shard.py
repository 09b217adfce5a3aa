"""HDF5 shards: one file holds several videos' features from one family.

Layout (readable with plain h5py or h5ls; see docs/cache-format.md):

    /                       attrs: format, format_version, family, extractor, fingerprint,
                                   spec (JSON), random_init, video_ids, backends (parallel to
                                   video_ids), versions (JSON: the libraries that made it)
    /<video_id>/            attrs: source_path, n_frames, fps, duration, width, height, backend
    /<video_id>/features    (L, D) float32
    /<video_id>/frame_index (L,) int64
    /<video_id>/timestamp   (L,) float64
    /<video_id>/<extra>     extractor-specific arrays (YOLO detections, SlowFast window frames)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from harmcache.hashing import canonical_json
from harmcache.provenance import library_versions
from harmcache.store.atomic import publish, temporary_name
from harmcache.store.family import Family
from harmcache.types import FeatureRecord, VideoFeatures, VideoInfo

FORMAT = "harmcache-shard"
FORMAT_VERSION = 1
CORE_DATASETS = ("features", "frame_index", "timestamp")
_STR = h5py.string_dtype("utf-8")


def shard_name(video_ids: list[str]) -> str:
    """Derived from the videos it holds, so a retried writer produces the same name, never a
    second copy."""
    digest = hashlib.sha256("\n".join(sorted(video_ids)).encode()).hexdigest()
    return f"shard-{digest[:20]}.h5"


def write_shard(folder: Path, family: Family, items: list[VideoFeatures]) -> Path:
    """Write and atomically commit a shard; returns its final path."""
    ids = [item.video_id for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError("a shard cannot hold the same video twice")
    final = folder / shard_name(ids)
    tmp = temporary_name(final)
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["family"] = family.name
        f.attrs["extractor"] = family.extractor
        f.attrs["fingerprint"] = family.fingerprint
        f.attrs["spec"] = canonical_json(family.spec)
        f.attrs["random_init"] = family.random_init
        f.attrs.create("video_ids", np.array(ids, dtype=object), dtype=_STR)
        backends = [item.info.backend for item in items]
        f.attrs.create("backends", np.array(backends, dtype=object), dtype=_STR)
        f.attrs["versions"] = canonical_json(library_versions())
        for item in items:
            group = f.create_group(item.video_id)
            group.attrs["source_path"] = item.source_path
            for key, value in item.info.to_dict().items():
                group.attrs[key] = value
            record = item.record
            group.create_dataset("features", data=record.features)
            group.create_dataset("frame_index", data=record.frame_index)
            group.create_dataset("timestamp", data=record.timestamp)
            for key, value in record.extras.items():
                group.create_dataset(key, data=value)
        f.flush()
    publish(tmp, final)
    return final


@dataclass
class ShardHeader:
    family: Family
    video_ids: list[str]
    backends: list[str] = field(default_factory=list)
    """Decode backend per video, parallel to video_ids (empty strings in older shards)."""
    versions: dict = field(default_factory=dict)
    """Library versions that made the shard (empty in older shards)."""


def read_header(path: Path) -> ShardHeader:
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(f"{path.name} is not a harmcache shard")
        spec = json.loads(f.attrs["spec"])
        family = Family(str(f.attrs["extractor"]), str(f.attrs["fingerprint"]), spec)
        ids = _strings(f.attrs["video_ids"])
        backends = _strings(f.attrs["backends"]) if "backends" in f.attrs else [""] * len(ids)
        versions = json.loads(f.attrs["versions"]) if "versions" in f.attrs else {}
    return ShardHeader(family, ids, backends, versions)


def _strings(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def read_group(group: h5py.Group, *, extras: bool = True) -> tuple[FeatureRecord, VideoInfo, str]:
    """One video's record; `extras=False` skips the raw arrays (detections, window frames)
    that training never reads."""
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
    )
    return record, info, str(a["source_path"])
