"""Hash bank lookup: a 60-frame query against a bank of 1,000,000 frame hashes, by the bank's
index (multi-index hashing, harmcache/known/index.py) beside brute force, in the same run.

- builds a bank of 16,667 entries x 60 frames = 1,000,020 frames: each entry a random hash
  walking 3 random bits a frame (neighbouring frames of a video are near, as PDQ's are), 5 % of
  the frames below the quality floor; written as real segments and opened from disk;
- queries: an entry's 60 frames with about 10 of 256 bits flipped in each (a re-encoded copy:
  it must match), and 60 random hashes (an unrelated upload: nothing within the distance),
  each frame with a centre hash, looked up among the bank's centre-crop frames (a sixth of the
  bank) as `harmcache match` looks up a file's frames;
- times, median of `repeats` with the index built: `match()` end to end (the lookup, shares,
  spans), the index's `pairs` alone, and the brute-force reference: faiss-cpu's
  `IndexBinaryFlat.range_search` (every frame compared, 2 threads); also faiss's own
  multi-index hashing (`IndexBinaryMultiHash`, 16 tables of 16 bits, 1 flip: the same exact
  cut) and how long opening the bank and building each index takes. The pairs of all three
  are checked equal. The claim: `match()` <= 50 ms on this 2-core machine.

    python -m bench.bank_bench [--quick]   # writes bench/results/bank-cpu[-quick].json
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.meta import run_metadata
from harmcache.known.bank import HashBank, write_segment
from harmcache.known.entries import EntryTable
from harmcache.known.match import match
from harmcache.known.pdq import CENTRE_VARIANT, MATCH_DISTANCE, MIN_QUALITY, FrameHashes

FULL = {"entries": 16_667, "frames_per_entry": 60, "repeats": 9}
QUICK = {"entries": 1_667, "frames_per_entry": 60, "repeats": 3}
TARGET_MS = 50.0
SEGMENT_FRAMES = 65_536
THREADS = 2


def synthetic_table(entries: int, per: int, seed: int = 0) -> EntryTable:
    """`entries` random walks of `per` frames through hash space (3 bits a step)."""
    rng = np.random.default_rng(seed)
    bits = np.zeros((entries, per, 256), dtype=bool)
    step = 512  # entries a block: the walk's bits are built a block at a time
    for lo in range(0, entries, step):
        n = min(step, entries - lo)
        start = rng.random((n, 1, 256)) < 0.5
        flips = np.zeros((n, per, 256), dtype=bool)
        np.put_along_axis(flips, rng.integers(0, 256, (n, per, 3)), True, axis=2)
        flips[:, 0] = False
        bits[lo : lo + n] = start ^ np.logical_xor.accumulate(flips, axis=1)
    hashes = np.packbits(bits.reshape(-1, 256), axis=1)
    quality = np.where(rng.random(len(hashes)) < 0.05, 20, 100)
    times = np.tile(np.arange(per, dtype=np.float64) + 0.5, entries)
    ids = [f"{i:08d}" for i in range(entries)]
    # A known video added from its file holds its centre crops too (variants.py): the last
    # sixth of the entries are such frames, so a query's centre lookup has frames to find.
    owner = np.repeat(np.arange(entries), per)
    variant = np.where(owner >= entries * 5 // 6, CENTRE_VARIANT, 0).astype(np.uint8)
    return EntryTable(
        ids, ["known"] * entries, ["bench"] * entries, [per] * entries, hashes, quality, times,
        variant,
    )  # fmt: skip


def perturbed(hashes: np.ndarray, bits: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    unpacked = np.unpackbits(hashes, axis=1)
    for row in unpacked:
        row[rng.choice(256, bits, replace=False)] ^= 1
    return np.packbits(unpacked, axis=1)


def write_bank(root: Path, table: EntryTable) -> None:
    bank = HashBank(root, create=True)
    starts = table.starts
    lo = 0
    while lo < len(table):
        hi = int(np.searchsorted(starts, starts[lo] + SEGMENT_FRAMES, side="right")) - 1
        hi = max(hi, lo + 1)
        part = EntryTable(
            table.ids[lo:hi], table.labels[lo:hi], table.sources[lo:hi],
            np.diff(starts[lo : hi + 1]),
            *(getattr(table, c)[starts[lo] : starts[hi]] for c in ("hashes", "quality", "times",
                                                                      "variant")),
        )  # fmt: skip
        write_segment(bank.segments_dir, part)
        lo = hi


def _median_ms(repeats: int, fn, *args) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(round((time.perf_counter() - start) * 1000, 2))
    return round(statistics.median(times), 2), times


def _sorted_pairs(rows: np.ndarray, frames: np.ndarray) -> np.ndarray:
    pairs = np.stack([np.asarray(rows, np.int64), np.asarray(frames, np.int64)], axis=1)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))] if len(pairs) else pairs


def run(results_dir: Path, quick: bool = False) -> dict:
    """Measure, write results_dir/bank-cpu[-quick].json, return the result."""
    import faiss

    faiss.omp_set_num_threads(THREADS)
    size = QUICK if quick else FULL
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="harmcache-bank-bench-"))
    try:
        table = synthetic_table(size["entries"], size["frames_per_entry"])
        write_bank(work / "bank", table)
        start = time.perf_counter()
        bank = HashBank(work / "bank")
        frames = bank.table.frames
        open_s = time.perf_counter() - start
        start = time.perf_counter()
        index, indexed = bank.table.index(MIN_QUALITY)
        index_s = time.perf_counter() - start

        known = size["entries"] // 2
        lo, hi = bank.table.starts[known], bank.table.starts[known + 1]
        queries = {
            "copy_of_an_entry": perturbed(bank.table.hashes[lo:hi], 10, seed=1),
            "unrelated": np.random.default_rng(2).integers(0, 256, (60, 32), dtype=np.uint8),
        }
        passing = index.hashes
        start = time.perf_counter()
        flat = faiss.IndexBinaryFlat(256)
        flat.add(passing)
        flat_build_s = time.perf_counter() - start
        start = time.perf_counter()
        multi = faiss.IndexBinaryMultiHash(256, 16, 16)
        multi.nflip = 1
        multi.add(passing)
        multi_build_s = time.perf_counter() - start

        per_query = {}
        for name, q in queries.items():
            # As `harmcache match` hashes a file: each frame with its centre (a second lookup).
            centre = perturbed(q, 40, seed=3)
            fh = FrameHashes(np.arange(60) + 0.5, q, np.full(60, 100), centre)
            found = match(fh, bank)
            ours = _sorted_pairs(*index.pairs(q, MATCH_DISTANCE))
            lims, _, ids = flat.range_search(q, MATCH_DISTANCE + 1)  # faiss: distance < radius
            brute = _sorted_pairs(np.repeat(np.arange(len(q)), np.diff(lims).astype(np.int64)), ids)
            lims, _, ids = multi.range_search(q, MATCH_DISTANCE + 1)
            theirs = _sorted_pairs(
                np.repeat(np.arange(len(q)), np.diff(lims).astype(np.int64)), ids
            )
            reps = size["repeats"]
            match_ms, match_all = _median_ms(reps, match, fh, bank)
            pairs_ms, _ = _median_ms(reps, index.pairs, q, MATCH_DISTANCE)
            flat_ms, flat_all = _median_ms(reps, flat.range_search, q, MATCH_DISTANCE + 1)
            multi_ms, _ = _median_ms(reps, multi.range_search, q, MATCH_DISTANCE + 1)
            per_query[name] = {
                "match_ms": match_ms,
                "brute_force_faiss_flat_ms": flat_ms,
                "index_pairs_ms": pairs_ms,
                "faiss_multihash_ms": multi_ms,
                "pairs_found": len(ours),
                "same_pairs_as_brute_force": bool(np.array_equal(ours, brute)),
                "same_pairs_as_faiss_multihash": bool(np.array_equal(ours, theirs)),
                "matches": [
                    {"entry": m.entry_id, "bank_share": m.bank_share, "spans": m.spans}
                    for m in found
                ],
                "match_ms_all": match_all,
                "brute_force_ms_all": flat_all,
            }
        worst_match = max(q["match_ms"] for q in per_query.values())
        worst_flat = max(q["brute_force_faiss_flat_ms"] for q in per_query.values())
        result = {
            "benchmark": "bank",
            "summary": {
                "query_ms": worst_match,
                "brute_force_ms": worst_flat,
                "speedup_over_brute_force": round(worst_flat / worst_match, 1),
                "target_ms": TARGET_MS,
                "meets_target": worst_match <= TARGET_MS,
                "bank_frames": frames,
                "query_frames": 60,
                "exact": all(
                    q["same_pairs_as_brute_force"] and q["same_pairs_as_faiss_multihash"]
                    for q in per_query.values()
                ),
            },
            "quick": quick,
            "meta": run_metadata(),
            "environment": {
                "load_average_before": [round(x, 2) for x in load_before],
                "load_average_after": [round(x, 2) for x in os.getloadavg()],
                "faiss_threads": THREADS,
                "faiss_version": faiss.__version__,
                "numpy_version": np.__version__,
            },
            "bank": {
                "entries": len(bank),
                "frames": frames,
                "frames_indexed": len(index),
                "segments": len(bank.segments),
                "bytes": bank.info()["bytes"],
                "open_s": round(open_s, 3),
                "index_build_s": round(index_s, 3),
                "faiss_flat_build_s": round(flat_build_s, 3),
                "faiss_multihash_build_s": round(multi_build_s, 3),
            },
            "queries": per_query,
            "distance": MATCH_DISTANCE,
            "repeats": size["repeats"],
        }
        del indexed
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results_dir.mkdir(parents=True, exist_ok=True)
    name = "bank-cpu-quick.json" if quick else "bank-cpu.json"
    (results_dir / name).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    out = run(Path(__file__).resolve().parent / "results", quick="--quick" in sys.argv)
    print(json.dumps(out["summary"], indent=2))
