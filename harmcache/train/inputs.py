"""What a head is trained and scored on: the labelled videos that have features from every
chosen family, the content guards on them, and how each kind of head reads them from the cache.

LightGBM and logreg use pooled statistics only: they get a `PooledData` pooled shard by shard
(never the sequences). The Transformer trains from a `StreamingLoader` (a shuffle buffer, never
the whole split). Every sequence head scores a split `SCORE_CHUNK` videos at a time. The
validation split, which early stopping scores after every epoch, is held in memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harmcache.errors import DataError
from harmcache.heads.base import EpochCallback, Head
from harmcache.heads.data import PooledData, SequenceData
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.train.features import (
    check_scans,
    constant_modalities,
    load_sequences,
    scan_cache,
    select_families,
)
from harmcache.train.labels import (
    JoinReport,
    LabeledVideo,
    join_labels,
    read_labels,
    without_rows_line,
)
from harmcache.train.loader import StreamingLoader, pool_cache
from harmcache.train.split import Split

log = logging.getLogger(__name__)

SCORE_CHUNK = 512
"""Videos loaded at a time to score a split with a sequence head: memory stays bounded."""
SMALL_SHARD = 64
"""Fewer videos than this per shard, on average, and reading is bound by opening files."""


@dataclass
class Joined:
    """Labelled videos that have features from every chosen family, and how the join went."""

    videos: list[LabeledVideo]
    report: JoinReport
    families: dict[str, Family]
    """extractor → the one family its features come from"""


def join_videos(
    cache: FeatureCache,
    labels: str | Path,
    positive: list[str] | None,
    features: list[str] | None,
    families: list[str] | None,
) -> Joined:
    """The labels joined to the cache; the families chosen; the videos some family lacks (or
    with no row in any) counted in the report and dropped."""
    videos, report = join_labels(read_labels(labels, positive), cache)
    chosen = select_families(cache, [v.video_id for v in videos], features, families)
    return Joined(_drop_incomplete(cache, chosen, videos, report), report, chosen)


def small_shards(cache: FeatureCache, chosen: dict[str, Family]) -> list[str]:
    """A note when the cache holds many small shards: compacting it makes training read faster."""
    sizes = [n for fam in chosen.values() for n in cache.index.shard_sizes(fam.name)]
    if len(sizes) < 64 or sum(sizes) / len(sizes) >= SMALL_SHARD:
        return []
    return [
        f"the cache holds {len(sizes)} shards of {sum(sizes) / len(sizes):.0f} videos on "
        f"average; `harmcache cache compact {cache.root}` merges them so training reads a few "
        "large shards instead"
    ]


class Inputs:
    """The sides of the split as `head` reads them: ids, labels, the held validation input."""

    def __init__(
        self,
        cache: FeatureCache,
        families: dict[str, Family],
        dims: dict[str, int],
        head: Head,
        videos: dict[str, list[LabeledVideo]],
    ):
        self.cache, self.families, self.dims, self.head = cache, families, dims, head
        self.videos = videos
        """train, val and test → their labelled videos"""
        self.ids = {name: [v.video_id for v in part] for name, part in videos.items()}
        self.y = {
            name: np.array([v.label for v in part], dtype=np.int64) for name, part in videos.items()
        }
        self.val = self.part(self.ids["val"], self.y["val"])
        self._val_sequences = self.val if isinstance(self.val, SequenceData) else None

    @classmethod
    def load(
        cls, cache: FeatureCache, joined: Joined, split: Split, head: Head, *, leave_out: bool
    ) -> Inputs:
        """The inputs of each side, after the content guards (`check_parts`)."""
        videos = split.parts(joined.videos)
        ids = {name: [v.video_id for v in part] for name, part in videos.items()}
        families, dims = check_parts(
            cache, joined.families, ids, joined.report, leave_out=leave_out
        )
        return cls(cache, families, dims, head, videos)

    def part(self, video_ids: list[str], labels: np.ndarray | None) -> SequenceData | PooledData:
        if self.head.pooled_stats is not None:
            return pool_cache(self.cache, self.families, video_ids, self.head.pooled_stats, labels)
        return load_sequences(self.cache, self.families, video_ids, labels)

    def fit_head(self, on_epoch: EpochCallback | None) -> None:
        """Fit the head on the training side, stopping early on validation."""
        if hasattr(self.head, "fit_stream"):
            stream = StreamingLoader(
                self.cache,
                self.families,
                self.ids["train"],
                self.y["train"],
                batch_size=self.head.batch_size,
                seed=self.head.seed,
            )
            self.head.fit_stream(stream, eval_set=self.val, on_epoch=on_epoch)
        else:
            train = self.part(self.ids["train"], self.y["train"])
            self.head.fit(train, eval_set=self.val, on_epoch=on_epoch)

    def scores(self, name: str) -> np.ndarray:
        """The head's harmful probability of each video of side `name`, in split order."""
        if name == "val":
            return self.head.predict_proba(self.val)[:, 1]
        video_ids = self.ids[name]
        step = len(video_ids) if self.head.pooled_stats is not None else SCORE_CHUNK
        parts = [
            self.head.predict_proba(self.part(video_ids[i : i + step], None))[:, 1]
            for i in range(0, len(video_ids), step)
        ]
        return np.concatenate(parts) if parts else np.zeros(0)

    def sequences(self, name: str) -> SequenceData:
        """Side `name` as sequences, whatever the head reads: timelines need the rows' times.
        The validation sequences are loaded once (the pooled heads' validation input holds none)."""
        if name != "val":
            return load_sequences(self.cache, self.families, self.ids[name], self.y[name])
        if self._val_sequences is None:
            self._val_sequences = load_sequences(
                self.cache, self.families, self.ids["val"], self.y["val"]
            )
        return self._val_sequences


def check_parts(
    cache: FeatureCache,
    chosen: dict[str, Family],
    ids: dict[str, list[str]],
    report: JoinReport,
    *,
    leave_out: bool,
) -> tuple[dict[str, Family], dict[str, int]]:
    """The content guards on the training and validation videos, scanned shard by shard;
    the families left, and their feature widths. With the default feature set (`leave_out`),
    a modality that carries nothing for the training videos is left out as long as another
    remains: identical in every one (random-init YOLO that detects nothing), or without rows
    in any (SlowFast on still images). `check_scans` refuses it when it was asked for, or when
    nothing else is left. Videos without rows in a modality are counted in `report`."""
    scans = {name: scan_cache(cache, chosen, part) for name, part in ids.items() if part}
    useless = constant_modalities(scans["train"])
    for name, scan in scans["train"].items():
        if not scan.has.any():
            useless[name] = f"no rows in any of the {len(scan.has)} training videos"
    if leave_out and useless and len(useless) < len(chosen):
        for extractor, why in useless.items():
            log.warning("left %s features out: %s", extractor, why)
            report.left_out[extractor] = why
            for part in scans.values():
                del part[extractor]
        chosen = {ex: fam for ex, fam in chosen.items() if ex not in useless}
    for extractor in chosen:
        empty = sum(int((~part[extractor].has).sum()) for part in scans.values())
        if empty:
            report.without_rows[extractor] = empty
            log.info("%s", without_rows_line(extractor, empty))
    check_scans(scans["train"], ids["train"])
    check_scans(scans["val"], ids["val"])
    return chosen, {name: scan.dim for name, scan in scans["train"].items()}


def _drop_incomplete(
    cache: FeatureCache, chosen: dict[str, Family], videos: list[LabeledVideo], report: JoinReport
) -> list[LabeledVideo]:
    """Keep the videos every chosen family holds, with a row in at least one of them; count
    the others (per missing extractor, and those with no row anywhere, e.g. an audio-only
    feature set and a video without a sound track)."""
    keep = []
    committed = {ex: cache.committed(fam) for ex, fam in chosen.items()}
    for v in videos:
        lacking = [ex for ex, ids in committed.items() if v.video_id not in ids]
        for ex in lacking:
            report.missing_features[ex] = report.missing_features.get(ex, 0) + 1
        if not lacking:
            keep.append(v)
    if not keep:
        raise DataError(
            "no labelled video has features from every chosen family ("
            + ", ".join(f.name for f in chosen.values())
            + "); pick fewer --features"
        )
    ids = [v.video_id for v in keep]
    rows = [cache.row_counts(fam, ids) for fam in chosen.values()]
    rowless = {vid for vid in ids if not any(counts[vid] for counts in rows)}
    report.no_rows = len(rowless)
    keep = [v for v in keep if v.video_id not in rowless]
    if not keep:
        raise DataError(
            "no labelled video has a row in any chosen family ("
            + ", ".join(f.name for f in chosen.values())
            + "); pick other --features"
        )
    return keep
