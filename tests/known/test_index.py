"""The bank's index (harmcache/known/index.py): multi-index hashing finds exactly the pairs
brute force finds, at every distance, however the work is split."""

from __future__ import annotations

import numpy as np
import pytest

from harmcache.known import index as index_module
from harmcache.known.index import HashIndex, brute_pairs, distances, flip_masks
from harmcache.known.pdq import hamming
from tests.known.media import flipped, random_hashes


def sorted_pairs(rows, frames) -> list[tuple[int, int]]:
    return sorted(zip(np.asarray(rows).tolist(), np.asarray(frames).tolist()))


@pytest.fixture(scope="module")
def bank_and_queries():
    bank = random_hashes(5000, seed=1)
    near = [flipped(bank[i : i + 1], bits, seed=i) for i, bits in enumerate(range(0, 64, 2))]
    queries = np.concatenate([*near, random_hashes(8, seed=2)])
    return bank, queries


@pytest.mark.parametrize("distance", [0, 1, 15, 16, 30, 31, 32, 47, 48, 63, 64, 100])
def test_pairs_are_exactly_brute_force(bank_and_queries, distance):
    bank, queries = bank_and_queries
    found = HashIndex(bank).pairs(queries, distance)
    assert sorted_pairs(*found) == sorted_pairs(*brute_pairs(queries, bank, distance))
    expected = np.argwhere(hamming(queries, bank) <= distance)
    assert sorted_pairs(*found) == sorted_pairs(expected[:, 0], expected[:, 1])


def test_pairs_come_sorted_and_once_each(bank_and_queries):
    bank, queries = bank_and_queries
    doubled = np.concatenate([bank, bank[:10]])  # the same hash twice is two frames
    rows, frames = HashIndex(doubled).pairs(queries, 31)
    assert list(zip(rows, frames)) == sorted(set(zip(rows.tolist(), frames.tolist())))
    assert {f for r, f in zip(rows, frames) if r == 0} == {0, 5000}


def test_a_query_split_into_many_steps_finds_the_same(bank_and_queries, monkeypatch):
    bank, queries = bank_and_queries
    whole = sorted_pairs(*HashIndex(bank).pairs(queries, 31))
    monkeypatch.setattr(index_module, "CANDIDATES_PER_STEP", 50)
    assert sorted_pairs(*HashIndex(bank).pairs(queries, 31)) == whole


def test_nothing_in_nothing_out():
    empty = np.zeros((0, 32), dtype=np.uint8)
    for bank, query in ((empty, random_hashes(3)), (random_hashes(3), empty)):
        rows, frames = HashIndex(bank).pairs(query, 31)
        assert rows.size == frames.size == 0


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((3, 31), dtype=np.uint8), r"\(N, 32\) uint8"),
        (np.zeros((3, 32), dtype=np.int64), r"dtype int64"),
        (np.zeros(32, dtype=np.uint8), r"got shape \(32,\)"),
    ],
)
def test_hashes_of_the_wrong_shape_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        HashIndex(bad)
    with pytest.raises(ValueError, match=match):
        HashIndex(random_hashes(2)).pairs(bad, 31)


def test_flip_masks_count_every_key_within_the_flips():
    assert len(flip_masks(0)) == 1 and len(flip_masks(1)) == 17 and len(flip_masks(2)) == 137
    assert len(set(flip_masks(2).tolist())) == 137


def test_distances_count_bits():
    a = np.zeros((1, 32), dtype=np.uint8)
    b = a.copy()
    b[0, 0], b[0, 31] = 0b1011, 0xFF
    assert distances(a, b).tolist() == [11]


def test_pairs_are_faiss_brute_force_range_search(bank_and_queries):
    faiss = pytest.importorskip("faiss")
    bank, queries = bank_and_queries
    flat = faiss.IndexBinaryFlat(256)
    flat.add(bank)
    limits, _, frames = flat.range_search(queries, 32)  # faiss keeps distances below the radius
    rows = np.repeat(np.arange(len(queries)), np.diff(limits).astype(np.int64))
    assert sorted_pairs(*HashIndex(bank).pairs(queries, 31)) == sorted_pairs(rows, frames)


def test_without_numpy_popcounts_a_byte_table_gives_the_same(bank_and_queries, monkeypatch):
    bank, queries = bank_and_queries
    fast = sorted_pairs(*HashIndex(bank).pairs(queries, 31))
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    assert sorted_pairs(*HashIndex(bank).pairs(queries, 31)) == fast
    assert sorted_pairs(*brute_pairs(queries, bank, 31)) == fast
