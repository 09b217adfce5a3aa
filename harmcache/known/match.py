"""Matching frame hashes with a bank: vPDQ's rule, and where in the query each entry was found.

The rule, every threshold an argument (vPDQ's defaults):

- frames of quality below `quality` (50), the query's and the entry's, are left out;
- a query frame and an entry frame match when their hashes are at most `distance` (31) bits
  apart;
- the query matches an entry when at least `bank_share` (0.8) of the entry's seconds hold a
  frame that matches some frame of the query. The whole of a short known clip is inside a long
  upload that contains it, so the clip is found however long the upload is. An entry hashed
  one frame a second, as vPDQ hashes, has one frame in each second, and the share is vPDQ's
  share of its frames; a known video hashed from its file (variants.py) has several frames in
  a second where the picture moves, and a second is found when any of them is. `query_share`
  is the other way round: the share of the query's frames that match some frame of the entry
  (1.0: nothing but known content).

An entry holding turns, mirrors or crops (entries.py) is matched variant by variant, each as a
whole, and reported by its best variant: a mirrored copy matches the mirror. A query's frame is
also looked up by its centre (`FrameHashes.centre`, the middle `pdq.CENTRE` of the picture)
among the entries' frames of that crop (`pdq.CENTRE_VARIANT`): a copy with a mark or logo in
its outer band matches there.

A match's `spans` say where on the query's clock the entry was found: the query's frames that
matched the entry (its best variant), each standing for the time nearer to it than to the
frames beside it (a 1-fps query's frame at 4.5 s stands for 4 to 5 s); matched frames are
merged into one span unless a frame between them that passed the quality did not match (a
dark frame left out does not split a span).

Matches of one query come best first: by `bank_share`, then `query_share`, then label.
`near_duplicate_clusters` applies the same rule between the videos of a cache.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from harmcache.errors import UsageError
from harmcache.known.bank import HashBank
from harmcache.known.entries import EntryTable
from harmcache.known.pdq import (
    CENTRE_VARIANT,
    HASH_BITS,
    MATCH_DISTANCE,
    MIN_QUALITY,
    VARIANTS,
    FrameHashes,
)
from harmcache.options import setting, validate

if TYPE_CHECKING:
    from harmcache.store.cache import FeatureCache

BANK_SHARE = 0.8
"""Share of an entry's seconds a query must hold to match it (vPDQ's 80 %)."""


def _bits(v) -> str | None:
    ok = isinstance(v, numbers.Integral) and 0 <= v <= HASH_BITS
    return None if ok else f"must be a whole number of bits from 0 to {HASH_BITS}, got {v!r}"


def _quality(v) -> str | None:
    ok = isinstance(v, numbers.Integral) and 0 <= v <= 100
    return None if ok else f"must be a whole number from 0 to 100, got {v!r}"


def _share(v) -> str | None:
    return None if 0 < v <= 1 else f"must be above 0 and at most 1, got {v:g}"


@dataclass(frozen=True)
class MatchRule:
    """The thresholds of the matching rule, checked when made."""

    distance: int = setting(
        MATCH_DISTANCE,
        help="Two frames match when their PDQ hashes differ in at most this many bits.",
        check=_bits,
    )
    quality: int = setting(
        MIN_QUALITY, help="Frames of a lower PDQ quality (0-100) are left out.", check=_quality
    )
    bank_share: float = setting(
        BANK_SHARE,
        help="A query matches an entry when at least this share of the entry's seconds hold a "
        "frame matching a frame of the query.",
        check=_share,
    )

    def __post_init__(self) -> None:
        validate(self)


BATCH_FRAMES = 50_000
"""Query frames compared with the bank at once: several queries share one pass."""


@dataclass(frozen=True)
class Match:
    """One bank entry a query matched."""

    entry_id: str
    label: str
    query_share: float
    """Share of the query's frames (of passing quality) that match a frame of the entry."""
    bank_share: float
    """Share of the entry's seconds (holding a frame of passing quality, in its best variant)
    found in the query."""
    spans: list[tuple[float, float]]
    """(start, end) seconds on the query's clock where the entry was found."""
    variant: str = VARIANTS[0]
    """The entry's variant that matched (`pdq.VARIANTS`): "original", "flip_y" (mirrored),
    "crop_90", ..."""

    def to_json(self) -> dict:
        """What `harmcache match --json` prints for it."""
        return {
            "label": self.label,
            "query_share": self.query_share,
            "bank_share": self.bank_share,
            "spans": [[start, end] for start, end in self.spans],
        }


def match(
    query: FrameHashes,
    bank: HashBank | EntryTable,
    *,
    distance: int = MATCH_DISTANCE,
    quality: int = MIN_QUALITY,
    bank_share: float = BANK_SHARE,
) -> list[Match]:
    """The entries of `bank` that `query` matches (the module's rule), best first."""
    return match_many([query], bank, distance=distance, quality=quality, bank_share=bank_share)[0]


def match_many(
    queries: list[FrameHashes],
    bank: HashBank | EntryTable,
    *,
    distance: int = MATCH_DISTANCE,
    quality: int = MIN_QUALITY,
    bank_share: float = BANK_SHARE,
) -> list[list[Match]]:
    """`match` for each query, several queries compared with the bank in one pass."""
    MatchRule(distance, quality, bank_share)
    table = bank.table if isinstance(bank, HashBank) else bank
    out: list[list[Match]] = []
    batch: list[FrameHashes] = []
    for query in queries:
        batch.append(query)
        if sum(len(q) for q in batch) >= BATCH_FRAMES:
            out.extend(_match_batch(batch, table, distance, quality, bank_share))
            batch = []
    if batch:
        out.extend(_match_batch(batch, table, distance, quality, bank_share))
    return out


def _match_batch(queries, table: EntryTable, distance, quality, share) -> list[list[Match]]:
    lengths = np.array([len(q) for q in queries], dtype=np.int64)
    first = np.concatenate([[0], np.cumsum(lengths)])
    hashes = np.concatenate([np.asarray(q.hashes, dtype=np.uint8) for q in queries])
    passing = np.concatenate([np.asarray(q.quality) >= quality for q in queries])
    asker = np.repeat(np.arange(len(queries)), lengths)
    results: list[list[Match]] = [[] for _ in queries]
    if len(table) == 0 or not passing.any():
        return results

    # Every (query frame, bank frame) pair within the distance, both of passing quality; and
    # each query frame's centre with the entries' frames of that variant.
    rows = np.flatnonzero(passing)
    index, indexed = table.index(quality)
    found_row, found_frame = index.pairs(hashes[rows], int(distance))
    q_frame, b_frame = rows[found_row], indexed[found_frame]
    with_centre = np.concatenate([np.full(len(q), q.centre is not None) for q in queries])
    centre_rows = rows[with_centre[rows]]
    if len(centre_rows) and (table.variant == CENTRE_VARIANT).any():
        centres = np.concatenate(
            [np.zeros_like(q.hashes) if q.centre is None else q.centre for q in queries]
        )
        found_row, found_frame = index.pairs(centres[centre_rows], int(distance))
        keep = table.variant[indexed[found_frame]] == CENTRE_VARIANT
        q_frame = np.concatenate([q_frame, centre_rows[found_row[keep]]])
        b_frame = np.concatenate([b_frame, indexed[found_frame[keep]]])
    if len(q_frame) == 0:
        return results
    variants = len(VARIANTS)
    group = (asker[q_frame] * len(table) + table.owner[b_frame]) * variants
    group += table.variant[b_frame]

    # Per (query, entry, variant): distinct seconds of the entry found, distinct query frames.
    groups, bank_found = _distinct_counts(group, table.second[b_frame])
    _, query_found = _distinct_counts(group, q_frame)
    who, entry = np.divmod(groups // variants, len(table))
    variant = groups % variants
    bank_part = bank_found / np.maximum(table.passing_counts(quality)[entry, variant], 1)
    query_part = query_found / np.bincount(asker[rows], minlength=len(queries))[who]

    # The best variant of each (query, entry); kept when enough of it was found.
    order = np.lexsort((-query_part, -bank_part, entry, who))
    pair = (who * len(table) + entry)[order]
    best = order[np.r_[True, pair[1:] != pair[:-1]]]
    best = best[bank_part[best] >= share - 1e-12]
    by_group = np.lexsort((q_frame, group))
    sorted_groups = group[by_group]
    for g in best:
        lo, hi = np.searchsorted(sorted_groups, [groups[g], groups[g] + 1])
        k, e = int(who[g]), int(entry[g])
        matched = q_frame[by_group[lo:hi]] - first[k]
        query = queries[k]
        results[k].append(
            Match(
                table.ids[e],
                table.labels[e],
                float(query_part[g]),
                float(bank_part[g]),
                frame_spans(query.times, matched, np.asarray(query.quality) >= quality),
                VARIANTS[int(variant[g])],
            )
        )
    for found in results:
        found.sort(key=lambda m: (-m.bank_share, -m.query_share, m.label, m.entry_id))
    return results


def frame_spans(
    times: np.ndarray, matched: np.ndarray, passing: np.ndarray
) -> list[tuple[float, float]]:
    """The (start, end) spans of the frames `matched` (positions in `times`): frame i stands
    for the time closer to it than to its neighbours, from the midpoint with the frame before
    to the midpoint with the frame after (a query's frames are the centres of its seconds), the
    first and last reaching half a median step out; a passing frame that is not matched
    splits."""
    times = np.asarray(times, dtype=np.float64)
    if len(matched) == 0:
        return []
    half = float(np.median(np.diff(times))) / 2 if len(times) > 1 else 0.0
    middles = (times[1:] + times[:-1]) / 2
    begins = np.concatenate([[max(0.0, times[0] - half)], middles])
    ends = np.concatenate([middles, [times[-1] + half]])
    hit = np.zeros(len(times), dtype=bool)
    hit[matched] = True
    splits = np.cumsum(passing & ~hit)  # frames with the same count before them share a run
    positions = np.flatnonzero(hit)
    run = splits[positions]
    starts = positions[np.r_[True, run[1:] != run[:-1]]]
    lasts = positions[np.r_[run[1:] != run[:-1], True]]
    return [(float(begins[a]), float(ends[b])) for a, b in zip(starts, lasts)]


def _distinct_counts(group: np.ndarray, item: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct `group` values and how many distinct `item`s each pairs with."""
    order = np.lexsort((item, group))
    g, i = group[order], item[order]
    new = np.r_[True, (g[1:] != g[:-1]) | (i[1:] != i[:-1])]
    return np.unique(g[new], return_counts=True)


# Between the videos of a cache ------------------------------------------------------------------


def near_duplicate_clusters(
    cache: FeatureCache,
    *,
    distance: int = MATCH_DISTANCE,
    quality: int = MIN_QUALITY,
    share: float = BANK_SHARE,
    family: str | None = None,
    min_size: int = 2,
    video_ids: list[str] | None = None,
) -> list[list[str]]:
    """The video ids of the cache's pdq family (`family`: its name, if the cache has several;
    `video_ids`: only these of its videos) grouped by the matching rule, made symmetric: two
    videos are in one group when either matches the other (with `share` as the bank share),
    and groups are the connected components of that. Groups of at least `min_size` videos,
    largest first, each sorted."""
    from harmcache.known.sources import cached_hashes, pdq_family

    try:
        MatchRule(distance, quality, share)
    except UsageError as exc:  # the rule's bank share is this function's `share`
        name = "share" if exc.parameter == "bank_share" else exc.parameter
        raise UsageError(exc.template, name) from None
    fam = pdq_family(cache, family)
    if video_ids is not None:
        held = cache.index.shards_of(fam.name, video_ids)
        video_ids = sorted(v for v in video_ids if v in held)
    videos = list(cached_hashes(cache, fam, video_ids))
    if not videos:
        return []
    table = EntryTable.from_entries([video.entry() for video in videos])
    found = match_many(
        [v.hashes for v in videos], table, distance=distance, quality=quality, bank_share=share
    )
    parent = list(range(len(videos)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    position = {eid: i for i, eid in enumerate(table.ids)}
    for i, matches in enumerate(found):
        for m in matches:
            a, b = root(i), root(position[m.entry_id])
            parent[max(a, b)] = min(a, b)
    groups: dict[int, list[str]] = {}
    for i, video in enumerate(videos):
        groups.setdefault(root(i), []).append(video.video_id)
    clusters = [sorted(ids) for ids in groups.values() if len(ids) >= min_size]
    return sorted(clusters, key=lambda ids: (-len(ids), ids[0]))
