"""Finding every bank frame within a Hamming distance of a query's frames, fast and exactly.

The index is multi-index hashing (Norouzi, Punjani and Fleet, "Fast Search in Hamming Space
with Multi-Index Hashing", CVPR 2012): each 256-bit hash is cut into 16 keys of 16 bits, and each
key position has a table from key value to the frames holding it. Two hashes at most `r` bits
apart differ by at most `r // 16` bits in one of their 16 keys (16 keys each differing by more
would add up to more than `r`), so probing every table with the query's key and its variants
within `r // 16` flips finds every frame within `r`; the candidates are then checked against the
whole hash. At vPDQ's distance of 31 that is 17 probes a table, and no false negative.

Measured against faiss-cpu's binary indexes on the project's shared 2-core machine
(bench/bank_bench.py, docs/known-content.md): a 60-frame query against a million frames takes
7 to 10 ms, where `IndexBinaryFlat`'s brute-force range search takes 65 to 75 ms and faiss's
own multi-index hashing (`IndexBinaryMultiHash`, the same exact cut of 16 keys and one flip)
about 110 ms. A candidate is checked a 64-bit word at a time and dropped once two words are
already too far, so most cost half a full comparison.

A table is a counting sort: `order[m]` lists the frames by their m-th key, `offsets[m, k]` is
where key value k starts. Building it for a million frames takes about 0.6 s (and 140 MB: the
tables, the hashes and their words), so the index is rebuilt in memory on a bank's first match,
never stored.
"""

from __future__ import annotations

import itertools

import numpy as np

from harmcache.known.pdq import HASH_BITS, HASH_BYTES

KEYS = 16
"""Keys a hash is cut into."""
KEY_BITS = HASH_BITS // KEYS
MAX_PROBES = 1024
"""Past this many probes per table (a distance above 63) the index compares with every frame."""
CANDIDATES_PER_STEP = 4_000_000
"""Queries are taken a group at a time so that the candidates checked at once stay about this
many (32 bytes each, twice over): a long query cannot take the memory."""


class HashIndex:
    """The frames `hashes` ((N, 32) uint8), indexed for `pairs`."""

    def __init__(self, hashes: np.ndarray):
        self.hashes = _rows(hashes)
        # The hashes again as four 64-bit words, word by word: checking a candidate reads its
        # first two words, and only the few within the distance so far read the other two.
        self.words = np.ascontiguousarray(self.hashes.view(np.uint64).T)
        keys = self.hashes.view(np.uint16)  # (N, 16): one 16-bit key per column
        # Stable radix sorts of 16-bit keys: about 30 ms per million frames each.
        self.order = np.ascontiguousarray(np.argsort(keys, axis=0, kind="stable").T)
        self.order = self.order.astype(np.int32 if len(keys) < 2**31 else np.int64)
        self.offsets = np.zeros((KEYS, 2**KEY_BITS + 1), dtype=np.int64)
        for m in range(KEYS):
            np.cumsum(np.bincount(keys[:, m], minlength=2**KEY_BITS), out=self.offsets[m, 1:])

    def __len__(self) -> int:
        return len(self.hashes)

    def pairs(self, query: np.ndarray, distance: int) -> tuple[np.ndarray, np.ndarray]:
        """Every (query row, indexed frame) pair at most `distance` bits apart, as two int64
        arrays sorted by query row, then frame."""
        query = _rows(query)
        if len(query) == 0 or len(self) == 0 or distance < 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        masks = flip_masks(distance // KEYS)
        if len(masks) > MAX_PROBES:
            return brute_pairs(query, self.hashes, distance)
        probes = query.view(np.uint16)[:, :, None] ^ masks[None, None, :]  # (Q, 16, P)
        tables = np.arange(KEYS)[None, :, None]
        starts = self.offsets[tables, probes]
        sizes = self.offsets[tables, probes.astype(np.int64) + 1] - starts
        # Queries a group at a time, each group's candidates about CANDIDATES_PER_STEP.
        group = np.cumsum(sizes.reshape(len(query), -1).sum(axis=1)) // CANDIDATES_PER_STEP
        bounds = [0, *(np.flatnonzero(np.diff(group)) + 1).tolist(), len(query)]
        found = [
            self._checked(query, lo, hi, starts[lo:hi], sizes[lo:hi], distance)
            for lo, hi in itertools.pairwise(bounds)
        ]
        return np.concatenate([q for q, _ in found]), np.concatenate([f for _, f in found])

    def _checked(self, query, lo, hi, starts, sizes, distance):
        """The pairs of queries lo..hi among the frames their probes name."""
        sizes = sizes.ravel()
        total = int(sizes.sum())
        if total == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        # Where each probe's run of frames lies in the flattened (16, N) `order`.
        table_base = np.broadcast_to(np.arange(KEYS)[None, :, None] * len(self), starts.shape)
        first = (starts + table_base).ravel()
        run_start = np.repeat(first - (np.cumsum(sizes) - sizes), sizes)
        frames = self.order.ravel()[run_start + np.arange(total)].astype(np.int64)
        probes_per_query = sizes.size // (hi - lo)
        rows = np.repeat(np.repeat(np.arange(lo, hi), probes_per_query), sizes)
        rows, frames = self._within(query, rows, frames, distance)
        # One frame can be found through several of its keys.
        key = np.unique(rows * len(self) + frames)
        return key // len(self), key % len(self)

    def _within(self, query, rows, frames, distance):
        """The (row, frame) candidates at most `distance` bits apart."""
        if not hasattr(np, "bitwise_count"):  # numpy 1: whole hashes, a byte table
            near = distances(query[rows], self.hashes[frames]) <= distance
            return rows[near], frames[near]
        asked = np.ascontiguousarray(query.view(np.uint64).T)
        bits = np.zeros(len(rows), dtype=np.int64)
        for word in range(4):  # the distance only grows: drop a candidate once it is too far
            bits += np.bitwise_count(asked[word][rows] ^ self.words[word][frames])
            if word == 1 or word == 3:
                near = bits <= distance
                rows, frames, bits = rows[near], frames[near], bits[near]
        return rows, frames


def brute_pairs(
    query: np.ndarray, hashes: np.ndarray, distance: int, *, block_bytes: int = 64 << 20
) -> tuple[np.ndarray, np.ndarray]:
    """`HashIndex.pairs` by comparing every query row with every frame: the reference the
    index is tested against, and the fallback for a distance past `MAX_PROBES`."""
    query, hashes = _rows(query), _rows(hashes)
    step = max(1, block_bytes // max(1, len(hashes) * HASH_BYTES))
    rows, frames = [], []
    for lo in range(0, len(query), step):
        block = query[lo : lo + step]
        near = distances(block[:, None, :], hashes[None, :, :]) <= distance
        r, f = np.nonzero(near)
        rows.append(r.astype(np.int64) + lo)
        frames.append(f.astype(np.int64))
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(rows), np.concatenate(frames)


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distances between hashes `a` and `b` (uint8, last axis 32, broadcast together)."""
    xor = np.bitwise_xor(a, b)  # a fresh C-ordered array: its rows view as 64-bit words
    if hasattr(np, "bitwise_count"):  # numpy 2: one popcount per 64-bit word
        return np.bitwise_count(xor.view(np.uint64)).sum(axis=-1, dtype=np.int64)
    return _POPCOUNT[xor].sum(axis=-1, dtype=np.int64)


def flip_masks(flips: int) -> np.ndarray:
    """The uint16 masks flipping at most `flips` of a key's 16 bits (none first)."""
    masks = [0]
    for n in range(1, min(flips, KEY_BITS) + 1):
        for bits in itertools.combinations(range(KEY_BITS), n):
            masks.append(sum(1 << b for b in bits))
    return np.array(masks, dtype=np.uint16)


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _rows(hashes: np.ndarray) -> np.ndarray:
    hashes = np.asarray(hashes)
    if hashes.ndim != 2 or hashes.shape[1] != HASH_BYTES or hashes.dtype != np.uint8:
        raise ValueError(
            f"hashes are (N, {HASH_BYTES}) uint8, got shape {hashes.shape} dtype {hashes.dtype}"
        )
    return np.ascontiguousarray(hashes)
