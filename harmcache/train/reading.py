"""One read of the features of every side of a split: each shard of each family once, whatever
the number of sides, giving what the content guards need of each side (`ModalityScan`) and,
for the heads that use only pooled statistics, the pooled rows.

Each family's shards are read in name order, one `ShardBlock` at a time, vectorised over the
block's concatenated rows: memory is one shard's rows plus the per-video results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harmcache.heads.data import PooledData, pooled_rows
from harmcache.store.block import ShardBlock
from harmcache.store.plan import ReadPlan

SCORE_CHUNK = 512
"""Videos loaded at a time to score with a sequence head: memory stays bounded."""


@dataclass
class ModalityScan:
    """What the content guards need of one modality, per video: whether it has rows, its
    largest and smallest real value and whether all are finite; and across videos, whether
    every real row is one and the same vector. From memory (`features.scan_data`) or shard by
    shard from the cache (`read_sides`): the same numbers either way."""

    dim: int
    has: np.ndarray
    big: np.ndarray
    small: np.ndarray
    finite: np.ndarray
    same_rows: bool
    """More than one video has rows, and all of their rows are equal."""
    first_row: np.ndarray | None


@dataclass
class SideFeatures:
    """What one pass over the shards found, per side of the split."""

    scans: dict[str, dict[str, ModalityScan]]
    """side → extractor → its content scan"""
    pooled: dict[str, dict[str, np.ndarray]]
    """side → extractor → (videos, len(stats) * width) float32 pooled rows, NaN where a video
    has no rows (`heads.data.pooled_statistics`); empty without `stats`"""


def pooled_data(
    pooled: dict[str, np.ndarray],
    video_ids: list[str],
    stats: tuple[str, ...],
    labels: np.ndarray | None = None,
) -> PooledData:
    """One side's pooled rows (extractor → rows, as `read_sides` gives them) as the
    `PooledData` LightGBM and logreg take, extractors in name order."""
    names = sorted(pooled)
    rows = [pooled[ex] for ex in names]
    dims = {ex: r.shape[1] // len(stats) for ex, r in zip(names, rows)}
    values = np.concatenate(rows, axis=1) if rows else np.zeros((len(video_ids), 0), np.float32)
    return PooledData(list(video_ids), values, tuple(stats), dims, labels)


def read_pooled(
    plans: dict[str, ReadPlan], stats: tuple[str, ...], labels: np.ndarray | None = None
) -> tuple[PooledData, dict[str, ModalityScan]]:
    """The videos of `plans` (extractor → plan of the same videos) pooled in one pass per
    family, with their content scans."""
    ids = next(iter(plans.values())).video_ids if plans else []
    read = read_sides(plans, {"all": len(ids)}, stats)
    return pooled_data(read.pooled["all"], ids, stats, labels), read.scans["all"]


def read_sides(
    plans: dict[str, ReadPlan], sizes: dict[str, int], stats: tuple[str, ...] | None = None
) -> SideFeatures:
    """Scan (and with `stats`, pool) the videos of every side in one pass per family.

    `plans`: extractor → its plan of every side's videos, side after side in the order of
    `sizes` (side → its number of videos), the same videos in every plan."""
    ids = next(iter(plans.values())).video_ids if plans else []
    position = {vid: i for i, vid in enumerate(ids)}
    side_of = np.repeat(np.arange(len(sizes)), list(sizes.values()))
    bounds = np.concatenate([[0], np.cumsum(list(sizes.values()))]).astype(np.int64)
    scans: dict[str, dict[str, ModalityScan]] = {side: {} for side in sizes}
    pooled: dict[str, dict[str, np.ndarray]] = {side: {} for side in sizes} if stats else {}
    for name, plan in sorted(plans.items()):
        scan = _Scan(len(ids), len(sizes))
        values: np.ndarray | None = None
        for block in plan.blocks(info=()):
            where = np.fromiter((position[v] for v in block.video_ids), np.int64)
            scan.add(block, where, side_of[where])
            if stats:
                if values is None:
                    width = len(stats) * block.features.shape[1]
                    values = np.full((len(ids), width), np.nan, dtype=np.float32)
                values[where] = pooled_rows(block.features, block.lengths, stats)
        for k, side in enumerate(sizes):
            a, b = int(bounds[k]), int(bounds[k + 1])
            scans[side][name] = scan.side(k, a, b)
            if stats:
                part = values[a:b] if values is not None else np.zeros((b - a, 0), np.float32)
                pooled[side][name] = part
    return SideFeatures(scans, pooled)


class _Scan:
    """`ModalityScan`s of one family, accumulated block by block over every side at once."""

    def __init__(self, n: int, sides: int):
        self.dim = 0
        self.has, self.finite = np.zeros(n, dtype=bool), np.ones(n, dtype=bool)
        self.big, self.small = np.full(n, -np.inf), np.full(n, np.inf)
        self.first: list[np.ndarray | None] = [None] * sides
        self.same = [True] * sides

    def add(self, block: ShardBlock, where: np.ndarray, side: np.ndarray) -> None:
        """Fold in a block whose videos sit at `where` and belong to the sides `side`."""
        rows, self.dim = block.features, block.features.shape[1]
        got = block.lengths > 0
        if not got.any() or self.dim == 0:
            return
        starts = (np.cumsum(block.lengths) - block.lengths)[got]
        at = where[got]
        self.has[at] = True
        self.big[at] = np.maximum.reduceat(rows.max(axis=1), starts)
        self.small[at] = np.minimum.reduceat(rows.min(axis=1), starts)
        self.finite[at] = np.logical_and.reduceat(np.isfinite(rows).all(axis=1), starts)
        present = np.unique(side[got]).tolist()
        row_side = np.repeat(side, block.lengths) if len(present) > 1 else None
        for k in present:
            own = rows if row_side is None else rows[row_side == k]
            if self.first[k] is None:
                self.first[k] = own[0].copy()
            self.same[k] = self.same[k] and bool((own == self.first[k]).all())

    def side(self, k: int, a: int, b: int) -> ModalityScan:
        has = self.has[a:b]
        same = self.same[k] and int(has.sum()) > 1
        first = self.first[k]
        return ModalityScan(
            self.dim, has, self.big[a:b], self.small[a:b], self.finite[a:b], same, first
        )
