"""What a head is trained and scored on: the labelled videos that have features from every
chosen family, the content guards on them, and how each kind of head reads them from the cache.

The index is asked once per family where the labelled videos are (`Holdings`, at the join);
every later step reads through plans made from that answer. The completeness check opens
only the video tables of shards the index says hold videos without rows (a video with no row
anywhere is dropped before the split); then every side's features are read in one pass
(`reading.read_sides`) for the content guards.
LightGBM and logreg use pooled statistics only: that same pass pools their rows, so they never
read the shards again (nor hold the sequences). The Transformer trains from a `StreamingLoader`
(a shuffle buffer, never the whole split). Every sequence head scores a split `SCORE_CHUNK`
videos at a time. The validation split, which early stopping scores after every epoch, is held
in memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harmcache.errors import DataError
from harmcache.heads.base import EpochCallback, Head
from harmcache.heads.data import PooledData, SequenceData
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.train.categories import HARMFUL, Taxonomy
from harmcache.train.features import (
    check_scans,
    constant_modalities,
    load_sequences,
    select_families,
)
from harmcache.train.holdings import Holdings
from harmcache.train.join_report import JoinReport, without_rows_line
from harmcache.train.labels import LabeledVideo, match_labels, read_label_set, targets_of
from harmcache.train.loader import StreamingLoader
from harmcache.train.reading import (
    SCORE_CHUNK,
    ModalityScan,
    pooled_data,
    read_pooled,
    read_sides,
)
from harmcache.train.split import Split

log = logging.getLogger(__name__)

SMALL_SHARD = 64
"""Fewer videos than this per shard, on average, and reading is bound by opening files."""


@dataclass
class Joined:
    """Labelled videos that have features from every chosen family, and how the join went."""

    videos: list[LabeledVideo]
    report: JoinReport
    families: dict[str, Family]
    """extractor → the one family its features come from"""
    holdings: Holdings
    """where each family holds the labelled videos (asked once, at the join)"""
    categories: list[str] = field(default_factory=lambda: [HARMFUL])
    """what each video's `targets` say, in order"""
    taxonomy: Taxonomy | None = None


def join_videos(
    cache: FeatureCache,
    labels: str | Path,
    positive: list[str] | None,
    features: list[str] | None,
    families: list[str] | None,
    taxonomy: Taxonomy | None = None,
) -> Joined:
    """The labels joined to the cache; the families chosen; the videos some family lacks (or
    with no row in any) counted in the report and dropped."""
    label_set = read_label_set(labels, positive, taxonomy)
    joined = match_labels(label_set.rows, cache, label_set.categories)
    videos, report, holdings = joined.videos, joined.report, joined.holdings
    ids = [v.video_id for v in videos]
    chosen = select_families(cache, ids, features, families, holdings=holdings)
    kept = _drop_incomplete(chosen, videos, report, holdings)
    return Joined(kept, report, chosen, holdings, label_set.categories, taxonomy)


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
        *,
        holdings: Holdings | None = None,
        pooled: dict[str, dict[str, np.ndarray]] | None = None,
    ):
        self.cache, self.families, self.dims, self.head = cache, families, dims, head
        self.holdings = holdings or Holdings.lookup(
            cache, (v.video_id for part in videos.values() for v in part)
        )
        self.videos = videos
        """train, val and test → their labelled videos"""
        self.ids = {name: [v.video_id for v in part] for name, part in videos.items()}
        self.y = {
            name: np.array([v.label for v in part], dtype=np.int64) for name, part in videos.items()
        }
        """side → each video's one bit (for one category: its label)"""
        self.targets = {name: targets_of(part) for name, part in videos.items()}
        """side → (videos, categories): 0, 1 or NaN where not labelled"""
        self._pooled = pooled or {}
        """side → extractor → its pooled rows, when the scan pooled them (`read_sides`)"""
        self.val = self.side("val")
        self._val_sequences = self.val if isinstance(self.val, SequenceData) else None

    @classmethod
    def load(
        cls, cache: FeatureCache, joined: Joined, split: Split, head: Head, *, leave_out: bool
    ) -> Inputs:
        """The inputs of each side, after the content guards (`check_parts`): every side's
        features are read in one pass per family, which also pools them for a pooled head."""
        videos = split.parts(joined.videos)
        ids = {name: [v.video_id for v in part] for name, part in videos.items()}
        every = [vid for part in ids.values() for vid in part]
        plans = {ex: joined.holdings.plan(fam, every) for ex, fam in joined.families.items()}
        read = read_sides(plans, {name: len(part) for name, part in ids.items()}, head.pooled_stats)
        scans = {name: read.scans[name] for name, part in ids.items() if part}
        families, dims = check_parts(
            joined.families, scans, ids, joined.report, leave_out=leave_out
        )
        return cls(
            cache, families, dims, head, videos, holdings=joined.holdings, pooled=read.pooled
        )

    def fit_labels(self, name: str) -> np.ndarray:
        """What the head learns from on side `name`: the 0/1 labels of a one-category run,
        else the (videos, categories) targets with NaN where not labelled."""
        targets = self.targets[name]
        return self.y[name] if targets.shape[1] == 1 else targets

    def side(self, name: str) -> SequenceData | PooledData:
        """Side `name` whole, as the head reads it."""
        labels = self.fit_labels(name)
        if self.head.pooled_stats is not None and name in self._pooled:
            pooled = {ex: self._pooled[name][ex] for ex in self.families}
            return pooled_data(pooled, self.ids[name], self.head.pooled_stats, labels)
        return self.part(self.ids[name], labels)

    def part(self, video_ids: list[str], labels: np.ndarray | None) -> SequenceData | PooledData:
        """Some videos, read from the cache as the head reads them."""
        if self.head.pooled_stats is not None:
            plans = {ex: self.holdings.plan(fam, video_ids) for ex, fam in self.families.items()}
            return read_pooled(plans, self.head.pooled_stats, labels)[0]
        return load_sequences(self.cache, self.families, video_ids, labels, holdings=self.holdings)

    def fit_head(self, on_epoch: EpochCallback | None) -> None:
        """Fit the head on the training side, stopping early on validation."""
        if hasattr(self.head, "fit_stream"):
            stream = StreamingLoader(
                self.cache,
                self.families,
                self.ids["train"],
                self.fit_labels("train"),
                batch_size=self.head.batch_size,
                seed=self.head.seed,
                holdings=self.holdings,
            )
            self.head.fit_stream(stream, eval_set=self.val, on_epoch=on_epoch)
        else:
            self.head.fit(self.side("train"), eval_set=self.val, on_epoch=on_epoch)

    def scores(self, name: str) -> np.ndarray:
        """(videos, categories): the head's probability of each category for each video of
        side `name`, in split order."""
        if name == "val":
            return self.head.predict_categories(self.val)
        if self.head.pooled_stats is not None:
            return self.head.predict_categories(self.side(name))
        video_ids = self.ids[name]
        parts = [
            self.head.predict_categories(self.part(video_ids[i : i + SCORE_CHUNK], None))
            for i in range(0, len(video_ids), SCORE_CHUNK)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.targets[name].shape[1]))

    def sequences(self, name: str) -> SequenceData:
        """Side `name` as sequences, whatever the head reads: timelines need the rows' times.
        The validation sequences are loaded once (the pooled heads' validation input holds none)."""
        if name != "val":
            return load_sequences(
                self.cache, self.families, self.ids[name], self.y[name], holdings=self.holdings
            )
        if self._val_sequences is None:
            self._val_sequences = load_sequences(
                self.cache, self.families, self.ids["val"], self.y["val"], holdings=self.holdings
            )
        return self._val_sequences


def check_parts(
    chosen: dict[str, Family],
    scans: dict[str, dict[str, ModalityScan]],
    ids: dict[str, list[str]],
    report: JoinReport,
    *,
    leave_out: bool,
) -> tuple[dict[str, Family], dict[str, int]]:
    """The content guards on the training and validation videos (`scans`: side → extractor →
    its scan, for the sides with videos); the families left, and their feature widths. With
    the default feature set (`leave_out`), a modality that carries nothing for the training
    videos is left out as long as another remains: identical in every one (random-init YOLO
    that detects nothing), or without rows in any (SlowFast on still images). `check_scans`
    refuses it when it was asked for, or when nothing else is left. Videos without rows in a
    modality are counted in `report`."""
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
    chosen: dict[str, Family], videos: list[LabeledVideo], report: JoinReport, holdings: Holdings
) -> list[LabeledVideo]:
    """Keep the videos every chosen family holds, with a row in at least one of them; count
    the others (per missing extractor, and those with no row anywhere, e.g. an audio-only
    feature set and a video without a sound track). Who holds what comes from `holdings`; the
    rows from the video tables of the shards the index says may have rowless videos."""
    keep = []
    held = {ex: holdings.held(fam) for ex, fam in chosen.items()}
    for v in videos:
        lacking = [ex for ex, ids in held.items() if v.video_id not in ids]
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
    has_rows = np.zeros(len(ids), dtype=bool)
    for fam in chosen.values():
        # Only the shards that may hold rowless videos are opened (the index says which).
        suspect = holdings.cache.index.shards_with_rowless(fam.name)
        where = holdings.held(fam)
        check = [vid for vid in ids if where[vid] in suspect]
        counts = holdings.plan(fam, check).row_counts() if check else {}
        has_rows |= np.fromiter((counts.get(vid, 1) > 0 for vid in ids), bool, len(ids))
    report.no_rows = int((~has_rows).sum())
    keep = [v for v, rows in zip(keep, has_rows.tolist()) if rows]
    if not keep:
        raise DataError(
            "no labelled video has a row in any chosen family ("
            + ", ".join(f.name for f in chosen.values())
            + "); pick other --features"
        )
    return keep
