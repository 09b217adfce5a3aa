"""What every head consumes: per-modality padded sequences with masks, on the video's time axis.

Heads never see the cache. `harmcache.train.features` builds a `SequenceData` from it; tests
build one from arrays. A `SequenceData` is the X of a head: it has `len()`, a `shape` of (N,)
and integer-array indexing, so scikit-learn's cross-validation can split it like an array.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harmcache.errors import DataError, UsageError


@dataclass
class Modality:
    """One extractor's rows for N videos, padded to the longest video."""

    values: np.ndarray
    """(N, L, D) float32; padded rows are zero."""
    mask: np.ndarray
    """(N, L) bool; True where a row is real."""
    timestamp: np.ndarray
    """(N, L) float64 seconds on the video's own time axis (0 where padded)."""
    position: np.ndarray
    """(N, L) float32 in [0, 1]: the timestamp divided by the video's duration."""

    @property
    def dim(self) -> int:
        return int(self.values.shape[2])

    def take(self, idx: np.ndarray) -> Modality:
        # Trim the padding the chosen videos do not need.
        mask = self.mask[idx]
        used = np.flatnonzero(mask.any(axis=0))
        length = int(used[-1]) + 1 if used.size else 0
        return Modality(
            self.values[idx, :length],
            mask[:, :length],
            self.timestamp[idx, :length],
            self.position[idx, :length],
        )


@dataclass
class SequenceData:
    """N videos: their ids, modalities (in a fixed order) and, for training, labels."""

    video_ids: list[str]
    modalities: dict[str, Modality]
    labels: np.ndarray | None = None
    """(N,) int64 0/1; or (N, K) float 0/1 with NaN where a category is not labelled for a video
    (one column per moderation category, `harmcache.heads.targets`); or None when scoring
    unlabelled videos."""
    duration: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """(N,) seconds."""

    def __post_init__(self) -> None:
        if len(self.duration) != len(self.video_ids):
            self.duration = np.zeros(len(self.video_ids))

    def __len__(self) -> int:
        return len(self.video_ids)

    @property
    def shape(self) -> tuple[int]:
        """(N,): one entry per video, so scikit-learn counts and indexes it like an array."""
        return (len(self),)

    def __getitem__(self, key) -> SequenceData:
        """The videos at `key` (an integer array, a boolean mask or a slice), as a SequenceData.
        scikit-learn's `_safe_indexing` writes `data[idx, ...]`: the Ellipsis is accepted."""
        if isinstance(key, tuple) and len(key) == 2 and key[1] is Ellipsis:
            key = key[0]
        if isinstance(key, slice):
            return self.subset(np.arange(len(self))[key])
        idx = np.asarray(key)
        if idx.ndim == 1 and idx.dtype == bool:
            if len(idx) != len(self):
                raise IndexError(f"a boolean mask of {len(idx)} for {len(self)} videos")
            return self.subset(np.flatnonzero(idx))
        if idx.ndim == 1 and (idx.size == 0 or np.issubdtype(idx.dtype, np.integer)):
            return self.subset(idx)
        raise TypeError(
            f"index a SequenceData with an integer array, a boolean mask or a slice, not {key!r}"
        )

    @property
    def dims(self) -> dict[str, int]:
        return {name: m.dim for name, m in self.modalities.items()}

    def subset(self, idx: np.ndarray | list[int]) -> SequenceData:
        """The videos at positions `idx`, in that order."""
        idx = np.asarray(idx, dtype=np.int64)
        return SequenceData(
            [self.video_ids[i] for i in idx],
            {name: m.take(idx) for name, m in self.modalities.items()},
            None if self.labels is None else self.labels[idx],
            self.duration[idx],
        )

    def window(self, start: float | np.ndarray, end: float | np.ndarray) -> SequenceData:
        """The same videos with only the rows whose timestamp lies in [start, end) kept;
        `start` and `end` are seconds, one for all videos or one per video."""
        lo = np.broadcast_to(np.asarray(start, dtype=np.float64), (len(self),))[:, None]
        hi = np.broadcast_to(np.asarray(end, dtype=np.float64), (len(self),))[:, None]
        out = {}
        for name, m in self.modalities.items():
            keep = m.mask & (m.timestamp >= lo) & (m.timestamp < hi)
            values = np.where(keep[..., None], m.values, 0).astype(np.float32)
            out[name] = Modality(values, keep, m.timestamp, m.position)
        return SequenceData(list(self.video_ids), out, self.labels, self.duration)


def stage_two_duration(
    recorded: np.ndarray | float,
    last_stamp: np.ndarray | float,
    *,
    snippet_seconds: float | None = None,
) -> np.ndarray:
    """Each video's duration as stage two sees it: the recorded one where it is known (> 0),
    else one second past its last row's timestamp (`last_stamp`; 0 for a video with no rows,
    which thus lasts 1 s).

    With `snippet_seconds` (the snippet grid of data built without durations), an unknown
    duration ends instead where the snippet holding the last row ends, so the grid has whole
    snippets only: with 1 s snippets a last row at 2.5 s gives 3 s, not 3.5 s."""
    recorded = np.asarray(recorded, dtype=np.float64)
    last = np.asarray(last_stamp, dtype=np.float64)
    if snippet_seconds is None:
        fallback = last + 1.0
    else:
        fallback = (np.floor(last / snippet_seconds) + 1) * snippet_seconds
    return np.where(recorded > 0, recorded, fallback)


def check_finite(X: SequenceData | PooledData, what: str, chunk: int = 256) -> None:
    """Raise DataError when `X` holds a NaN or infinite feature value.

    One such value in the training rows turns the neural heads' statistics, and so every score,
    into NaN, without an error. A `PooledData` may hold NaN (a video with no rows in a
    modality), never an infinity."""
    if isinstance(X, PooledData):
        _refuse(np.isinf(X.values).any(axis=1), X.video_ids, what, "infinite pooled values")
        return
    for name, m in X.modalities.items():
        bad = np.zeros(len(X), dtype=bool)
        # In chunks of videos: one boolean copy of every row at once would be as large again.
        for i in range(0, len(X), chunk):
            bad[i : i + chunk] = ~np.isfinite(m.values[i : i + chunk]).all(axis=(1, 2))
        _refuse(bad, X.video_ids, what, f"non-finite feature values (NaN or inf) in {name}")


def _refuse(bad: np.ndarray, video_ids: list[str], what: str, problem: str) -> None:
    if bad.any():
        first = video_ids[int(np.flatnonzero(bad)[0])]
        raise DataError(
            f"{what} holds {problem} for {int(bad.sum())} video(s) (first: {first}); "
            "features must be finite numbers"
        )


@dataclass
class PooledData:
    """N videos already pooled to fixed-size rows (`pooled_statistics` of a SequenceData, or
    `harmcache.train.loader.pooled_from_cache` computed shard by shard): what LightGBM and
    logreg consume, without the padded sequences ever being held."""

    video_ids: list[str]
    values: np.ndarray
    """(N, columns) float32; NaN where a video has no rows in a modality."""
    stats: tuple[str, ...]
    dims: dict[str, int]
    """extractor → feature width; columns are modalities in sorted name order, each
    `len(stats) * width` wide."""
    labels: np.ndarray | None = None
    """As `SequenceData.labels`."""

    def __len__(self) -> int:
        return len(self.video_ids)

    def columns(self, stats: tuple[str, ...], what: str) -> np.ndarray:
        """The values, which must have been pooled with `stats` (a head's own)."""
        if tuple(stats) != tuple(self.stats):
            raise UsageError(
                f"{what} was pooled with {','.join(self.stats)}; this head pools {','.join(stats)}"
            )
        return self.values


def pooled_statistics(
    data: SequenceData,
    stats: tuple[str, ...] = ("mean", "std", "max", "min"),
    chunk: int = 256,
    *,
    order: list[str] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Fixed-size features: masked statistics over time per modality, concatenated in `order`
    (default: the data's own order) so columns do not depend on how the data was built.

    A video with no rows in a modality gets NaN there (LightGBM treats it as missing)."""
    blocks, names = [], []
    for name in data.modalities if order is None else order:
        m = data.modalities[name]
        # In chunks of videos: a float64 copy of all rows at once would be several GB.
        parts = [
            _pool(m.values[i : i + chunk], m.mask[i : i + chunk], stats)
            for i in range(0, len(data), chunk)
        ]
        blocks.append(np.concatenate(parts) if parts else np.zeros((0, len(stats) * m.dim)))
        names += [f"{name}.{stat}.{j}" for stat in stats for j in range(m.dim)]
    if not blocks:
        return np.zeros((len(data), 0), dtype=np.float32), names
    return np.concatenate(blocks, axis=1).astype(np.float32), names


def _pool(values: np.ndarray, mask: np.ndarray, stats: tuple[str, ...]) -> np.ndarray:
    values = values.astype(np.float64)
    m = mask[..., None]
    count = mask.sum(axis=1)[:, None].astype(np.float64)
    safe = np.maximum(count, 1)
    mean = np.where(m, values, 0).sum(axis=1) / safe
    columns = []
    for stat in stats:
        if stat == "mean":
            col = mean
        elif stat == "std":
            col = np.sqrt(np.where(m, (values - mean[:, None]) ** 2, 0).sum(axis=1) / safe)
        elif stat == "max":
            col = np.where(m, values, -np.inf).max(axis=1, initial=-np.inf)
        elif stat == "min":
            col = np.where(m, values, np.inf).min(axis=1, initial=np.inf)
        else:
            raise ValueError(f"unknown statistic {stat!r}")
        columns.append(np.where(count == 0, np.nan, col))
    return np.concatenate(columns, axis=1)


class Moments:
    """Running per-feature mean and variance of rows seen in chunks (Chan et al.'s parallel
    Welford merge): float64 accumulators of one row's width, never a float64 copy of the rows."""

    def __init__(self, dim: int):
        self.count = 0
        self.mean = np.zeros(dim, dtype=np.float64)
        self.m2 = np.zeros(dim, dtype=np.float64)

    def update(self, rows: np.ndarray) -> Moments:
        """Fold in (R, D) rows of any float dtype."""
        n = len(rows)
        if n == 0:
            return self
        mean = rows.sum(axis=0, dtype=np.float64) / n
        m2 = np.zeros_like(self.m2)
        for start in range(0, n, 4096):  # a float64 temporary of at most 4,096 rows
            m2 += np.square(rows[start : start + 4096] - mean).sum(axis=0)
        total = self.count + n
        delta = mean - self.mean
        self.m2 += m2 + delta**2 * (self.count * n / total)
        self.mean += delta * (n / total)
        self.count = total
        return self

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (`np.std`'s default)."""
        return np.sqrt(self.m2 / max(self.count, 1))

    def to_json(self) -> dict:
        return {"rows": self.count, "mean": self.mean.tolist(), "std": self.std.tolist()}


def modality_moments(m: Modality, chunk: int = 256) -> Moments:
    """`Moments` of a modality's real rows, gathered a chunk of videos at a time."""
    moments = Moments(m.dim)
    for i in range(0, len(m.mask), chunk):
        moments.update(m.values[i : i + chunk][m.mask[i : i + chunk]])
    return moments


def pooled_rows(
    features: np.ndarray,
    lengths: np.ndarray,
    stats: tuple[str, ...] = ("mean", "std", "max", "min"),
) -> np.ndarray:
    """`pooled_statistics` for videos whose rows are concatenated (`features[offsets[i] :
    offsets[i] + lengths[i]]`, offsets the running sum of lengths, as in a `ShardBlock`):
    (n, len(stats) * D) float64, one `reduceat` per statistic over all the rows at once.
    A video with no rows gets NaN."""
    lengths = np.asarray(lengths, dtype=np.int64)
    n, dim = len(lengths), features.shape[1]
    has = lengths > 0
    starts = (np.cumsum(lengths) - lengths)[has]
    count = lengths[has].astype(np.float64)[:, None]
    out = np.full((n, len(stats) * dim), np.nan)
    if not has.any():
        return out
    # Empty videos are left out of the cut points, so each segment runs to the next real one.
    mean = np.add.reduceat(features, starts, axis=0, dtype=np.float64) / count
    for k, stat in enumerate(stats):
        if stat == "mean":
            col = mean
        elif stat == "std":
            centred = np.square(features - np.repeat(mean, lengths[has], axis=0))
            col = np.sqrt(np.add.reduceat(centred, starts, axis=0) / count)
        elif stat == "max":
            col = np.maximum.reduceat(features, starts, axis=0)
        elif stat == "min":
            col = np.minimum.reduceat(features, starts, axis=0)
        else:
            raise ValueError(f"unknown statistic {stat!r}")
        out[has, k * dim : (k + 1) * dim] = col
    return out
