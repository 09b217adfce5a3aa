"""Near-duplicate-aware splits: re-encodes, crops and re-uploads of one clip have different
bytes, so a split by video id can put one copy in training and another in test, and the test
then flatters the head. When the cache holds a pdq family, every cluster of near-duplicate
labelled videos (`harmcache.known.match.near_duplicate_clusters`: the vPDQ matching rule, made
symmetric) becomes one group, so the split keeps it on one side.

A cluster joins the groups its videos already had: with one group among them, the others join
it (its side does not move); with several, they merge into one named after the cluster's first
video. A labels file with a split column keeps its sides: near-duplicates across them are
counted and reported, not moved. Clusters whose labels disagree are reported too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from harmcache.errors import UsageError
from harmcache.store.cache import FeatureCache
from harmcache.train.labels import LabeledVideo

MODES = ("group", "off")
PDQ = "pdq"
GROUP_PREFIX = "near-duplicates:"


@dataclass
class NearDuplicates:
    """What grouping near-duplicates did."""

    clusters: int = 0
    """Clusters of two or more labelled videos."""
    videos: int = 0
    """Labelled videos in those clusters."""
    merged: int = 0
    """Clusters that changed some video's group (and so, maybe, its side)."""
    disagreeing: list[list[str]] = field(default_factory=list)
    """Clusters whose videos carry different labels (video ids)."""
    across_split: int = 0
    """With a split column: clusters it puts on more than one side (left as given)."""

    def lines(self) -> list[str]:
        if not self.clusters:
            return []
        out = [
            f"near-duplicate clusters among the labelled videos: {self.clusters} "
            f"({self.videos} videos); each kept on one side of the split: {self.merged} "
            "regrouped"
        ]
        if self.across_split:
            out[0] = (
                f"near-duplicate clusters among the labelled videos: {self.clusters}; the "
                f"labels' split column puts {self.across_split} of them on more than one side "
                "(kept as given: those test numbers may flatter the head)"
            )
        if self.disagreeing:
            shown = "; ".join(",".join(v[:12] for v in ids) for ids in self.disagreeing[:3])
            out.append(
                f"warning: {len(self.disagreeing)} near-duplicate clusters carry different "
                f"labels (e.g. {shown}); check those labels"
            )
        return out

    def to_json(self) -> dict:
        return {
            "clusters": self.clusters,
            "videos": self.videos,
            "merged": self.merged,
            "disagreeing": self.disagreeing,
            "across_split": self.across_split,
        }


def has_pdq(cache: FeatureCache) -> bool:
    return any(f.extractor == PDQ for f in cache.families())


def group_near_duplicates(
    cache: FeatureCache, videos: list[LabeledVideo], mode: str | None
) -> NearDuplicates:
    """Put each cluster of near-duplicate labelled videos in one group (in place). `mode`:
    group, off, or None (group when the cache has a pdq family)."""
    if mode not in (None, *MODES):
        raise UsageError(f"--near-duplicates must be group or off, got {mode!r}")
    if mode == "off" or (mode is None and not has_pdq(cache)):
        return NearDuplicates()
    if not has_pdq(cache):
        raise UsageError(
            f"--near-duplicates group needs a pdq family in {cache.root}; extract with the "
            "default extractors (or --extractors ...,pdq), or pass --near-duplicates off"
        )
    from harmcache.known.match import near_duplicate_clusters

    by_id = {v.video_id: v for v in videos}
    clusters = near_duplicate_clusters(cache, video_ids=list(by_id))
    out = NearDuplicates(clusters=len(clusters), videos=sum(len(c) for c in clusters))
    split_given = any(v.split is not None for v in videos)
    for ids in clusters:
        members = [by_id[v] for v in ids]
        if not _agree(members):
            out.disagreeing.append(ids)
        if split_given:
            out.across_split += len({v.split for v in members}) > 1
            continue
        groups = sorted({v.group for v in members if v.group})
        name = groups[0] if len(groups) == 1 else f"{GROUP_PREFIX}{ids[0]}"
        if any(v.group != name for v in members):
            out.merged += 1
        _regroup(videos, members, groups, name)
    return out


def _regroup(
    videos: list[LabeledVideo], members: list[LabeledVideo], groups: list[str], name: str
) -> None:
    """Every member, and every video of a group a member had, into group `name`."""
    merged = set(groups)
    for v in videos:
        if v.group in merged and len(merged) > 1:
            v.group = name
    for v in members:
        v.group = name


def _agree(members: list[LabeledVideo]) -> bool:
    """Whether the videos' labels agree in every category where two are labelled."""
    for k in range(len(members[0].targets)):
        seen = {v.targets[k] for v in members if not math.isnan(v.targets[k])}
        if len(seen) > 1:
            return False
    return True
