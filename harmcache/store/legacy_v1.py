"""Shards of format_version 1, the first layout: one HDF5 group per video.

    /<video_id>/               attrs: source_path, n_frames, fps, duration, width, height, backend
    /<video_id>/features       (L, D) float32
    /<video_id>/frame_index    (L,)   int64
    /<video_id>/timestamp      (L,)   float64
    /<video_id>/<extra>        the extractor-specific arrays (detections, window_frames)

with the same root attributes as the current layout. Everything that reads or checks them is
here, so that when no cache holds one any more (`cache migrate` rewrites them) this file and
the branches that call it (`reader.py`, `shard_check.py`) can be deleted.
"""

from __future__ import annotations

import h5py
import numpy as np

from harmcache.store.block import ShardBlock
from harmcache.store.shard import (
    CORE_DATASETS,
    INFO_COLUMNS,
    INFO_DTYPES,
    OPTIONAL_COLUMNS,
    STRING_COLUMNS,
    ShardHeader,
    concat,
    offsets_of,
)
from harmcache.types import FeatureRecord, VideoFeatures, VideoInfo


def grouped_block(
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
        more[key] = (np.concatenate(parts), offsets_of(length), length)
    return ShardBlock(
        family,
        name,
        ids,
        offsets_of(lengths),
        lengths,
        concat([r.features for r in records], (0, *width), np.float32),
        concat([r.frame_index for r in records], (0,), np.int64),
        concat([r.timestamp for r in records], (0,), np.float64),
        info,
        more,
    )


def grouped_videos(f: h5py.File, video_ids: list[str], *, extras: bool) -> dict[str, VideoFeatures]:
    """One `VideoFeatures` per id of `video_ids`, in that order."""
    out = {}
    for vid in video_ids:
        record, info, source = read_group(f[vid], extras=extras)
        out[vid] = VideoFeatures(vid, info, source, record)
    return out


def grouped_row_counts(f: h5py.File, ids: list[str]) -> dict[str, int]:
    return {vid: int(f[vid]["features"].shape[0]) for vid in ids}


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


def check_groups(f: h5py.File, header: ShardHeader, where: str, dim: int | None) -> list[str]:
    """What `cache verify` finds wrong with a format_version 1 shard."""
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
