"""A read plan: which shard of one family holds each video asked for, worked out once from the
index, and every way of reading those videos back.

`FeatureCache.plan(family, video_ids)` makes one. Its reads cost a few large reads per shard:

    plan.blocks()       one `ShardBlock` (concatenated arrays) per shard, in shard-name order
    plan.videos()       one `VideoFeatures` per video, in the order asked
    plan.row_counts()   video id → its number of rows, from the shards' video tables alone
    plan.ray_dataset()  a Ray Dataset, one block per shard slice, read by the Ray workers

`plan.slices(n)` and `plan.select(video_ids)` are smaller plans of the same videos, made
without asking the index again: a reader that goes over the same videos slice by slice (the
training loader) plans once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from harmcache.errors import CacheError
from harmcache.store.block import Allocator, ShardBlock
from harmcache.store.index import Index
from harmcache.store.reader import read_block, read_videos, row_counts
from harmcache.types import VideoFeatures


class ReadPlan:
    """The videos `video_ids` of the family `family` (its folder `folder`), grouped by the
    shard that holds each: `shards` is [(shard file, its videos)], shards in name order and
    videos in the order asked. `where` maps (at least) each of them to its shard."""

    def __init__(self, family: str, folder: Path, where: Mapping[str, str], video_ids: list[str]):
        self.family = family
        self.folder = folder
        _require(family, video_ids, where)
        self.video_ids = list(dict.fromkeys(video_ids))
        self._where = where
        by_shard: dict[str, list[str]] = defaultdict(list)
        for vid in self.video_ids:
            by_shard[where[vid]].append(vid)
        self.shards: list[tuple[str, list[str]]] = sorted(by_shard.items())

    @classmethod
    def from_index(
        cls, index: Index, family: str, folder: Path, video_ids: list[str] | None = None
    ) -> ReadPlan:
        """The plan for `video_ids` (default: every video of the family). A list of ids is
        looked up id by id, never by reading the whole family's entries."""
        if video_ids is None:
            where = index.entries(family)
            return cls(family, folder, where, list(where))
        return cls(family, folder, index.shards_of(family, list(video_ids)), list(video_ids))

    def __len__(self) -> int:
        return len(self.video_ids)

    def select(self, video_ids: list[str]) -> ReadPlan:
        """The plan for some of this plan's videos."""
        return ReadPlan(self.family, self.folder, self._where, video_ids)

    def slices(self, size: int) -> list[ReadPlan]:
        """This plan cut into plans of at most `size` videos, each within one shard, in read
        order."""
        return [
            ReadPlan(self.family, self.folder, self._where, vids[i : i + size])
            for _, vids in self.shards
            for i in range(0, len(vids), size)
        ]

    # --- reading ---------------------------------------------------------------------------
    def blocks(
        self,
        *,
        extras: bool = False,
        info: tuple[str, ...] | None = None,
        alloc: Allocator | None = None,
    ) -> Iterator[ShardBlock]:
        """One `ShardBlock` per shard, videos in shard order: no per-video objects, a few
        large reads per shard. `extras=True` adds the extractor-specific arrays; `info` names
        the per-video columns wanted (default: all; each is a read, which shows on small
        shards); `alloc` makes the features arrays (see `reader.read_block`)."""
        for shard, vids in self.shards:
            with _reading(self.family, shard):
                block = read_block(
                    self.folder / shard,
                    vids,
                    extras=extras,
                    family=self.family,
                    info=info,
                    alloc=alloc,
                )
            yield block

    def videos(self, *, extras: bool = True) -> list[VideoFeatures]:
        """One `VideoFeatures` per video, in the order asked, each shard's arrays read in one
        slice (or, for a few videos of a big shard, only their rows); `extras=False` leaves out
        the extractor-specific raw arrays."""
        out: dict[str, VideoFeatures] = {}
        for shard, vids in self.shards:
            with _reading(self.family, shard):
                out.update(read_videos(self.folder / shard, vids, extras=extras))
        return [out[vid] for vid in self.video_ids]

    def row_counts(self) -> dict[str, int]:
        """video id → its number of rows, from the shards' video tables alone."""
        out: dict[str, int] = {}
        for shard, vids in self.shards:
            with _reading(self.family, shard):
                lengths = row_counts(self.folder / shard)
            out.update((vid, lengths[vid]) for vid in vids)
        return out

    def ray_dataset(self, *, slice_videos: int = 256):
        """The videos as a Ray Dataset for cluster training or scoring: one block per shard
        slice of at most `slice_videos` videos, each read by a Ray task with `read_block` (so
        the shards must be on storage the workers can reach). One row per video: video_id,
        features (L, D) float32, frame_index (L,), timestamp (L,), duration."""
        import ray.data

        items = [
            {"path": f"{self.folder}/{part.shards[0][0]}", "video_ids": part.video_ids}
            for part in self.slices(slice_videos)
        ]
        if not items:
            raise CacheError(f"family {self.family} holds no videos to make a dataset of")
        return ray.data.from_items(items, override_num_blocks=len(items)).flat_map(_ray_rows)


def _require(family: str, video_ids: list[str], where: Mapping[str, str]) -> None:
    missing = [v for v in video_ids if v not in where]
    if missing:
        raise CacheError(f"{len(missing)} video(s) are not in family {family}, e.g. {missing[0]}")


@contextmanager
def _reading(family: str, shard: str) -> Iterator[None]:
    """A shard that cannot be read (damaged, truncated, of a newer format, not holding what the
    index says) is a one-line `CacheError` naming it."""
    try:
        yield
    except (OSError, ValueError, KeyError) as exc:
        reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise CacheError(
            f"cannot read the shard {family}/{shard} ({reason}); "
            "`harmcache cache verify` checks every shard"
        ) from None


def _ray_rows(item: dict) -> list[dict]:
    """One shard slice's videos as Ray Dataset rows."""
    block = read_block(Path(item["path"]), list(item["video_ids"]))
    rows = []
    for i, (vid, a, n) in enumerate(
        zip(block.video_ids, block.offsets.tolist(), block.lengths.tolist())
    ):
        rows.append(
            {
                "video_id": vid,
                "features": block.features[a : a + n],
                "frame_index": block.frame_index[a : a + n],
                "timestamp": block.timestamp[a : a + n],
                "duration": float(block.info["duration"][i]),
            }
        )
    return rows
