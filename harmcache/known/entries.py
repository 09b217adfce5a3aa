"""Entries of known content, one at a time (`Entry`) and many in columns (`EntryTable`).

An entry is one piece of known content: its id, a label (what it is), where it came from, and
its frames' PDQ hashes, qualities and times. A still image's entry holds its eight turns and
mirrors as eight frames at time 0, told apart by `variant` (an index into `pdq.VARIANTS`); a
known video hashed from its file holds its frames, their mirrors and centre crops
(variants.py); one from a hash file or a cache holds its frames as they were given, variant 0.
Matching (match.py) takes each variant of an entry as a whole, and counts an entry's seconds:
`EntryTable.second` is the second of the entry each frame falls in, from its first frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harmcache.known.index import HashIndex
from harmcache.known.pdq import HASH_BYTES, VARIANTS


@dataclass(frozen=True)
class Entry:
    """One piece of known content and its frames' hashes, in time order."""

    entry_id: str
    """Unique in a bank: a media file's SHA-256 (a cached video's id), or a digest of the hashes
    a hash file gave (see sources.py)."""
    label: str
    source: str
    """Where the hashes came from: a file, a line of a hash file, a cache's video."""
    hashes: np.ndarray
    """(N, 32) uint8."""
    quality: np.ndarray
    """(N,) int, 0 to 100."""
    times: np.ndarray
    """(N,) float64 seconds."""
    variant: np.ndarray = field(default=None)  # type: ignore[assignment]
    """(N,) uint8: the index in `pdq.VARIANTS` of the turn, mirror or crop each frame hashes (0:
    the content as it is); None gives all zeros."""

    def __post_init__(self) -> None:
        hashes = np.asarray(self.hashes)
        n = len(hashes)
        if hashes.ndim != 2 or hashes.shape[1] != HASH_BYTES or hashes.dtype != np.uint8:
            raise ValueError(f"an entry's hashes are (N, {HASH_BYTES}) uint8, got {hashes.shape}")
        variant = np.zeros(n, np.uint8) if self.variant is None else np.asarray(self.variant)
        for name, value in (("quality", self.quality), ("times", self.times), ("variant", variant)):
            if np.shape(value) != (n,):
                raise ValueError(f"an entry's {name} is ({n},), got {np.shape(value)}")
        if n and int(variant.max()) >= len(VARIANTS):
            raise ValueError(f"an entry's variants are 0 to {len(VARIANTS) - 1}")
        object.__setattr__(self, "hashes", hashes)
        object.__setattr__(self, "quality", np.asarray(self.quality, dtype=np.int64))
        object.__setattr__(self, "times", np.asarray(self.times, dtype=np.float64))
        object.__setattr__(self, "variant", variant.astype(np.uint8))

    def __len__(self) -> int:
        return len(self.hashes)


class EntryTable:
    """Many entries in columns: per entry `ids`, `labels`, `sources` and `starts` (entry i's
    frames are `starts[i]:starts[i + 1]`); per frame `hashes`, `quality`, `times`, `variant`,
    `owner` (its entry's position) and `second` (the second of its entry it falls in, counted
    from the entry's first frame). What matching reads, from a bank or made in memory."""

    def __init__(self, ids, labels, sources, counts, hashes, quality, times, variant):
        self.ids: list[str] = list(ids)
        self.labels: list[str] = list(labels)
        self.sources: list[str] = list(sources)
        counts = np.asarray(counts, dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.hashes = np.ascontiguousarray(hashes, dtype=np.uint8).reshape(-1, HASH_BYTES)
        self.quality = np.asarray(quality, dtype=np.int64)
        self.times = np.asarray(times, dtype=np.float64)
        self.variant = np.asarray(variant, dtype=np.uint8)
        self.owner = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        if not len(self.ids) == len(self.labels) == len(self.sources) == len(counts):
            raise ValueError("an entry table needs one id, label, source and count per entry")
        if not len(self.hashes) == len(self.quality) == len(self.times) == len(self.variant):
            raise ValueError("an entry table needs one hash, quality, time and variant per frame")
        if self.starts[-1] != len(self.hashes):
            raise ValueError("an entry table's counts must add up to its frames")
        first = np.zeros(len(counts))
        held = counts > 0
        if held.any():
            first[held] = np.minimum.reduceat(self.times, self.starts[:-1][held])
        self.second = np.floor(self.times - first[self.owner] + 1e-9).astype(np.int64)
        self._indexes: dict[int, tuple[HashIndex, np.ndarray]] = {}
        self._counts: dict[int, np.ndarray] = {}

    @classmethod
    def from_entries(cls, entries: list[Entry]) -> EntryTable:
        def column(name: str, empty: np.ndarray) -> np.ndarray:
            return np.concatenate([getattr(e, name) for e in entries]) if entries else empty

        return cls(
            [e.entry_id for e in entries],
            [e.label for e in entries],
            [e.source for e in entries],
            [len(e) for e in entries],
            column("hashes", np.zeros((0, HASH_BYTES), np.uint8)),
            column("quality", np.zeros(0, np.int64)),
            column("times", np.zeros(0)),
            column("variant", np.zeros(0, np.uint8)),
        )

    @classmethod
    def concat(cls, tables: list[EntryTable]) -> EntryTable:
        """The tables' entries in order, each id kept once (its first)."""
        seen: set[str] = set()
        ids, labels, sources, counts, frames = [], [], [], [], []
        for table in tables:
            keep = np.zeros(len(table), dtype=bool)
            for i, entry_id in enumerate(table.ids):
                if entry_id in seen:
                    continue
                seen.add(entry_id)
                keep[i] = True
                ids.append(entry_id)
                labels.append(table.labels[i])
                sources.append(table.sources[i])
                counts.append(int(table.starts[i + 1] - table.starts[i]))
            frames.append(keep[table.owner])

        def column(name: str) -> np.ndarray:
            parts = [getattr(t, name)[keep] for t, keep in zip(tables, frames)]
            return np.concatenate(parts) if parts else getattr(EMPTY, name)

        return cls(ids, labels, sources, counts, *map(column, FRAME_COLUMNS))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def frames(self) -> int:
        return len(self.hashes)

    def entry(self, i: int) -> Entry:
        lo, hi = int(self.starts[i]), int(self.starts[i + 1])
        return Entry(
            self.ids[i],
            self.labels[i],
            self.sources[i],
            self.hashes[lo:hi],
            self.quality[lo:hi],
            self.times[lo:hi],
            self.variant[lo:hi],
        )

    def index(self, quality: int) -> tuple[HashIndex, np.ndarray]:
        """The index of the frames of at least `quality`, and each indexed row's frame position
        in the table: built on first use, then kept (frames below the quality are never
        compared, so they stay out of the index and cost nothing)."""
        if quality not in self._indexes:
            positions = np.flatnonzero(self.quality >= quality)
            self._indexes[quality] = (HashIndex(self.hashes[positions]), positions)
        return self._indexes[quality]

    def passing_counts(self, quality: int) -> np.ndarray:
        """(entries, len(pdq.VARIANTS)) int64: each entry's seconds holding a frame of at least
        `quality`, per variant (kept, as the index is). An entry hashed one frame a second has
        as many seconds as frames."""
        if quality not in self._counts:
            keep = self.quality >= quality
            at = self.owner[keep] * len(VARIANTS) + self.variant[keep]
            span = int(self.second.max(initial=0)) + 1
            seconds = np.unique(at * span + self.second[keep]) // span
            counts = np.bincount(seconds, minlength=len(self) * len(VARIANTS))
            self._counts[quality] = counts.reshape(len(self), len(VARIANTS))
        return self._counts[quality]


FRAME_COLUMNS = ("hashes", "quality", "times", "variant")
EMPTY = EntryTable.from_entries([])
