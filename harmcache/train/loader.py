"""Training batches streamed from the cache, with memory bounded by a shuffle buffer.

`StreamingLoader` reads the cache shard slice by shard slice (the slices of a `ReadPlan`: a few
large reads per slice), in an order shuffled per epoch, into a buffer of at most
`buffer_videos` videos, and yields batches drawn at random from the buffer as padded float32
`SequenceData` with masks: the form every head consumes, labels included ((B,) or (B, K), as
given). Nothing holds the whole cache, and the order depends only on the seed and the epoch.

`moments` (per-modality normalisation statistics) and `pooled_from_cache` (the fixed-size
features of LightGBM and logreg) are one streaming pass each, vectorised over a shard's
concatenated rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from harmcache.errors import UsageError
from harmcache.heads.data import (
    Modality,
    Moments,
    PooledData,
    SequenceData,
    stage_two_duration,
)
from harmcache.store.block import ShardBlock
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.store.plan import ReadPlan
from harmcache.train.holdings import Holdings
from harmcache.train.reading import read_pooled


@dataclass(eq=False)
class _Video:
    video_id: str
    label: int | float | np.ndarray
    """0/1 (NaN: not labelled), or one such per category."""
    duration: float
    rows: dict[str, tuple[np.ndarray, np.ndarray]]
    """modality → (features (L, D) float32, timestamps (L,) float64): views into the block
    the video was read in, until `detach` copies them out."""
    slice_id: int

    def detach(self) -> None:
        """Own the rows, so the block they were read in can be freed."""
        self.rows = {k: (f.copy(), t.copy()) for k, (f, t) in self.rows.items()}


class StreamingLoader:
    """Seeded, shuffled, padded batches of cached videos, read shard by shard.

    Parameters
    ----------
    cache, families : the cache and extractor → family, as `load_sequences` takes them.
    video_ids, labels : the videos to stream and their labels: (n,) 0/1, or (n, K) with one
        0/1 column per category and NaN where a category is not labelled (None: unlabelled,
        read as all 0). Each batch's `labels` are the same rows.
    batch_size : videos per batch.
    buffer_videos : the most videos held at once (read, not yet yielded). The shuffle mixes
        videos across every slice that is in the buffer together.
    slice_videos : videos read per step; at most `buffer_videos`. Larger reads are faster.
    seed : with the epoch, fixes the order of slices and of the draws from the buffer.
    holdings : where the families hold the videos, when already asked (the label join's);
        without it the index is asked here.
    """

    def __init__(
        self,
        cache: FeatureCache,
        families: dict[str, Family],
        video_ids: list[str],
        labels: np.ndarray | None = None,
        *,
        batch_size: int = 4,
        buffer_videos: int = 1024,
        slice_videos: int = 256,
        seed: int = 0,
        holdings: Holdings | None = None,
    ):
        if min(batch_size, buffer_videos, slice_videos) < 1:
            raise UsageError("batch_size, buffer_videos and slice_videos must be at least 1")
        if not families:
            raise UsageError("the loader needs at least one family")
        self.cache = cache
        self.families = dict(sorted(families.items()))
        self.video_ids = list(video_ids)
        if len(set(self.video_ids)) != len(self.video_ids):
            raise UsageError("video_ids holds duplicates")
        self.labels = _labels(labels, len(self.video_ids))

        self.batch_size = batch_size
        self.buffer_videos = buffer_videos
        self.slice_videos = min(slice_videos, buffer_videos)
        self.seed = seed
        self._label = dict(zip(self.video_ids, self.labels))
        # Each family's shards are looked up once, here, not per slice. A slice is at most
        # `slice_videos` videos within one shard of the first family, so it is one read per
        # family when the families share their sharding.
        plan = holdings.plan if holdings is not None else cache.plan
        self._plans = {name: plan(fam, self.video_ids) for name, fam in self.families.items()}
        self._slices = next(iter(self._plans.values())).slices(self.slice_videos)
        self.max_blocks = 2 * -(-self.buffer_videos // self.slice_videos)
        """Blocks that buffered videos may keep alive; see `_Blocks`."""
        self._free: list[np.ndarray] = []  # memory of freed blocks, kept across epochs
        self.peak_buffer_ = 0
        """The most videos the buffer has held (for the tests and the benchmark)."""
        self.peak_blocks_ = 0
        """The most blocks held alive by buffered videos."""
        self._dims: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.video_ids)

    @property
    def dims(self) -> dict[str, int]:
        """extractor → feature width, from one video's rows."""
        if self._dims is None:
            probe = self.video_ids[:1]
            self._dims = {
                name: int(next(plan.select(probe).blocks(info=())).features.shape[1])
                for name, plan in self._plans.items()
            }
        return self._dims

    def epoch(self, epoch: int = 0) -> Iterator[SequenceData]:
        """Every video once, in batches of `batch_size` (the last may be smaller), in an order
        fixed by (seed, epoch)."""
        rng = np.random.default_rng([self.seed, epoch])
        pool: list[_Video] = []
        blocks = _Blocks(self.max_blocks, self._free)
        for k in rng.permutation(len(self._slices)):
            part = self._slices[k]
            while pool and len(pool) + len(part) > self.buffer_videos:
                yield self._draw(pool, rng, blocks)
            pool.extend(self._read(part, int(k), blocks))
            self.peak_buffer_ = max(self.peak_buffer_, len(pool))
            self.peak_blocks_ = max(self.peak_blocks_, len(blocks))
        while pool:
            yield self._draw(pool, rng, blocks)

    def __iter__(self) -> Iterator[SequenceData]:
        return self.epoch(0)

    def _draw(self, pool: list[_Video], rng: np.random.Generator, blocks: _Blocks) -> SequenceData:
        picks = rng.choice(len(pool), min(self.batch_size, len(pool)), replace=False)
        batch = [pool[i] for i in picks]
        for i in sorted(picks.tolist(), reverse=True):  # swap-remove, highest first
            pool[i] = pool[-1]
            pool.pop()
        out = _batch(batch, list(self.families))  # copies the rows out of the blocks
        blocks.drawn(batch)
        return out

    def _read(self, part: ReadPlan, slice_id: int, blocks: _Blocks) -> list[_Video]:
        """The slice's videos (`part`: the first family's plan of them), their rows views into
        the slice's blocks."""
        vids = part.video_ids
        rows: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {v: {} for v in vids}
        duration: dict[str, float] = {}
        arrays = []
        for k, (name, plan) in enumerate(self._plans.items()):
            for block in (plan.select(vids) if k else part).blocks(
                info=() if k else ("duration",),  # the first family's suffices
                alloc=blocks.alloc,
            ):
                arrays.append(block.features)
                ends = (block.offsets + block.lengths).tolist()
                for i, (vid, a, b) in enumerate(zip(block.video_ids, block.offsets.tolist(), ends)):
                    rows[vid][name] = (block.features[a:b], block.timestamp[a:b])
                    if k == 0:
                        duration[vid] = _duration(block, i)
        videos = [_Video(v, self._label[v], duration[v], rows[v], slice_id) for v in vids]
        blocks.add(slice_id, videos, arrays)
        return videos

    def moments(self) -> dict[str, Moments]:
        """Per-modality running mean and standard deviation of every real row: one pass over
        the cache, float64 accumulators per feature."""
        out = {}
        for name, plan in self._plans.items():
            moments = Moments(self.dims[name])
            for block in plan.blocks(info=()):
                moments.update(block.features)
            out[name] = moments
        return out


class _Blocks:
    """The blocks that buffered videos are views into, and the memory of freed ones.

    A video waits in the buffer as views into the block it was read in: its rows are copied
    once, into its batch. A block lives while any of its videos waits, so past `max_blocks`
    live blocks the oldest one's stragglers are copied out. A freed block's features array
    goes to `free` and is handed to a later read, since fresh pages cost about as much as
    reading the bytes into them; `free` keeps at most `max_blocks` blocks' arrays. Memory thus
    stays within about five buffers' worth of rows, whatever the size of the cache."""

    def __init__(self, max_blocks: int, free: list[np.ndarray]):
        self.max_blocks = max_blocks
        self._waiting: dict[int, set[_Video]] = {}  # oldest first
        self._arrays: dict[int, list[np.ndarray]] = {}
        self._free = free  # byte buffers of freed blocks
        self._spare = 0  # the most arrays one block has had

    def __len__(self) -> int:
        return len(self._waiting)

    def alloc(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised array, in a freed block's memory when one is big enough (but not
        over twice the size, so a small read does not pin a big buffer)."""
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        for i, buffer in enumerate(self._free):
            if size <= buffer.nbytes <= 2 * size:
                return self._free.pop(i)[:size].view(dtype).reshape(shape)
        return np.empty(size, np.uint8).view(dtype).reshape(shape)

    def add(self, slice_id: int, videos: list[_Video], arrays: list[np.ndarray]) -> None:
        self._waiting[slice_id] = set(videos)
        self._arrays[slice_id] = arrays
        self._spare = max(self._spare, len(arrays))
        while len(self._waiting) > self.max_blocks:
            oldest = next(iter(self._waiting))
            for video in self._waiting[oldest]:
                video.detach()
            self._release(oldest)

    def drawn(self, videos: list[_Video]) -> None:
        """These videos left the buffer (their batch holds copies of their rows)."""
        for video in videos:
            waiting = self._waiting.get(video.slice_id)
            if waiting is not None:
                waiting.discard(video)
                if not waiting:
                    self._release(video.slice_id)

    def _release(self, slice_id: int) -> None:
        del self._waiting[slice_id]
        for array in self._arrays.pop(slice_id):
            root = array
            while isinstance(root.base, np.ndarray):
                root = root.base
            if root.dtype == np.uint8 and root.ndim == 1:  # made by `alloc`
                self._free.append(root)
        del self._free[: max(0, len(self._free) - self.max_blocks * self._spare)]


def _labels(labels: np.ndarray | None, n: int) -> np.ndarray:
    """(n,) int64 0/1 labels as given (all 0 when None), or float64 ones ((n,) or (n, K)) where
    they may hold NaN."""
    if labels is None:
        return np.zeros(n, dtype=np.int64)
    labels = np.asarray(labels)
    if labels.ndim not in (1, 2):
        raise UsageError(f"labels must be (videos,) or (videos, categories), got {labels.shape}")
    if len(labels) != n:
        raise UsageError(f"{len(labels)} labels for {n} videos")
    return labels.astype(np.int64 if labels.dtype.kind in "biu" else np.float64)


def _duration(block: ShardBlock, i: int) -> float:
    """Video `i`'s `stage_two_duration`, as `load_sequences` takes it."""
    a, n = int(block.offsets[i]), int(block.lengths[i])
    last = block.timestamp[a : a + n].max() if n else 0.0
    return float(stage_two_duration(block.info["duration"][i], last))


def _batch(videos: list[_Video], names: list[str]) -> SequenceData:
    duration = np.array([v.duration for v in videos], dtype=np.float64)
    modalities = {}
    for name in names:
        parts = [v.rows[name] for v in videos]
        length = max((len(f) for f, _ in parts), default=0)
        dim = parts[0][0].shape[1] if parts else 0
        values = np.empty((len(videos), length, dim), dtype=np.float32)
        mask = np.zeros((len(videos), length), dtype=bool)
        stamp = np.zeros((len(videos), length), dtype=np.float64)
        for i, (f, t) in enumerate(parts):
            values[i, : len(f)] = f
            values[i, len(f) :] = 0  # only the padding is zeroed: the rows are written once
            mask[i, : len(f)] = True
            stamp[i, : len(f)] = t
        position = np.clip(stamp / np.maximum(duration, 1e-9)[:, None], 0.0, 1.0)
        modalities[name] = Modality(
            values, mask, stamp, np.where(mask, position, 0).astype(np.float32)
        )
    labels = np.array([v.label for v in videos])
    return SequenceData([v.video_id for v in videos], modalities, labels, duration)


def pooled_from_cache(
    cache: FeatureCache,
    families: dict[str, Family],
    video_ids: list[str],
    stats: tuple[str, ...] = ("mean", "std", "max", "min"),
) -> tuple[np.ndarray, list[str]]:
    """`heads.data.pooled_statistics` of `video_ids` computed shard by shard from the cache:
    (N, columns) float32 in `video_ids` order, modalities in sorted name order, and the column
    names. Memory is one shard's rows plus the (N, columns) result."""
    data = pool_cache(cache, families, video_ids, stats)
    names = [
        f"{ex}.{stat}.{j}"
        for ex in sorted(families)
        for stat in stats
        for j in range(data.dims[ex])
    ]
    return data.values, names


def pool_cache(
    cache: FeatureCache,
    families: dict[str, Family],
    video_ids: list[str],
    stats: tuple[str, ...],
    labels: np.ndarray | None = None,
) -> PooledData:
    """`pooled_from_cache` as the `PooledData` that LightGBM and logreg take: one pass over
    each family's shards (`reading.read_pooled`, what training uses)."""
    plans = {ex: cache.plan(fam, list(video_ids)) for ex, fam in families.items()}
    return read_pooled(plans, tuple(stats), labels)[0]
