"""Which videos go in which shard, and when a video is done: the grouping both engines share.

Pure bookkeeping, no I/O. The local engine feeds it each video as its features are ready and
commits the shards it hands back; a Ray actor asks it to group a batch up front
(`ShardBatcher.group`), so that a retried batch finds the shards it already committed under the
same names (a shard's name derives from the videos it holds).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    """One shard's videos, for one family (named by its extractor)."""

    family: str
    video_ids: tuple[str, ...]


class ShardBatcher:
    """Videos join each of their families' open shard in the order they are added; a shard is
    full at `shard_size` videos. A video is done once every shard it joined is committed."""

    def __init__(self, shard_size: int):
        if shard_size < 1:
            raise ValueError(f"a shard holds at least 1 video, got {shard_size}")
        self.shard_size = shard_size
        self.open: dict[str, list[str]] = {}  # family → its open shard's videos
        self.waiting: dict[str, set[str]] = {}  # video → families not yet committed

    def add(self, video_id: str, families: Iterable[str]) -> list[Shard]:
        """`video_id` has features for `families`: the shards this fills, in that order."""
        full = []
        for family in families:
            self.waiting.setdefault(video_id, set()).add(family)
            members = self.open.setdefault(family, [])
            members.append(video_id)
            if len(members) >= self.shard_size:
                full.append(Shard(family, tuple(self.open.pop(family))))
        return full

    def flush(self) -> list[Shard]:
        """The shards still open, by family name."""
        return [Shard(family, tuple(self.open.pop(family))) for family in sorted(self.open)]

    def committed(self, shard: Shard) -> list[str]:
        """Mark `shard` committed; returns its videos that are now done (every shard they
        joined is committed)."""
        done = []
        for video_id in shard.video_ids:
            left = self.waiting[video_id]
            left.discard(shard.family)
            if not left:
                done.append(video_id)
                del self.waiting[video_id]
        return done

    @classmethod
    def group(cls, needs: Iterable[tuple[str, Iterable[str]]], shard_size: int) -> list[Shard]:
        """Every shard for videos added in this order, each with the families it needs."""
        batcher = cls(shard_size)
        shards = [shard for vid, families in needs for shard in batcher.add(vid, families)]
        return shards + batcher.flush()
