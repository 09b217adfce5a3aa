"""Which of a set of videos each family holds, and in which shard: asked of the index once per
family, then shared by every step of stage two that needs it.

The label join (is a labelled video cached anywhere?), family selection (how many of them does
each family cover?), the completeness check (which family lacks which video?), the row counts,
the content scan and every read of the features (a `ReadPlan` made from it) all take their
answers from one `Holdings`, so the index is read once per family, never a family's whole set
of videos per step.
"""

from __future__ import annotations

from collections.abc import Iterable

from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.store.plan import ReadPlan


class Holdings:
    """video id → shard file, per family of `cache`, for the videos looked up so far."""

    def __init__(self, cache: FeatureCache, families: Iterable[str] | None = None):
        self.cache = cache
        names = [f.name for f in cache.families()] if families is None else families
        self._where: dict[str, dict[str, str]] = {name: {} for name in names}

    @classmethod
    def lookup(
        cls, cache: FeatureCache, video_ids: Iterable[str], families: Iterable[str] | None = None
    ) -> Holdings:
        """Where each family (default: every family of the cache) holds `video_ids`: one
        `Index.shards_of` per family."""
        holdings = cls(cache, families)
        holdings.add(video_ids)
        return holdings

    def add(self, video_ids: Iterable[str]) -> None:
        """Look up more videos (those not yet found anywhere), one question per family."""
        ids = list({v: None for v in video_ids if not self.anywhere(v)})  # the index sorts
        if not ids:
            return
        for name, held in self._where.items():
            found = self.cache.index.shards_of(name, ids)
            # Keyed by the caller's own id strings: one copy of each id, not one per family.
            held.update((vid, found[vid]) for vid in ids if vid in found)

    def held(self, family: Family | str) -> dict[str, str]:
        """video id → shard of the looked-up videos that `family` holds."""
        return self._where.get(family if isinstance(family, str) else family.name, {})

    def anywhere(self, video_id: str) -> bool:
        """Whether some family holds the video."""
        return any(video_id in held for held in self._where.values())

    def plan(self, family: Family | str, video_ids: list[str]) -> ReadPlan:
        """The reads of `video_ids` of `family`, without asking the index again; a
        `CacheError` names a video the family does not hold."""
        name = family if isinstance(family, str) else family.name
        return ReadPlan(name, self.cache.family_dir(name), self.held(name), video_ids)
