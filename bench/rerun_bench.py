"""Reruns cost (almost) nothing: planning over inputs that are already cached.

A first run must read every input once to hash it. A rerun over the same, unchanged inputs must
not: the cache's memo maps (absolute path, size, mtime_ns, inode) to the video id. This bench
plans a first run over N small files, commits every one to a real family (the cache then holds
them, as after a finished extraction), and plans the rerun. Bytes read come from the kernel's
own count (`/proc/self/io` rchar: every byte any read() returned, page cache included).

Targets (issue 7): rerun bytes read <= 1% of the first run's; rerun planning wall time <= 5% of
the first run's hashing time. Beside them, the physical limit: SHA-256 of the same bytes already
in memory, one thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.meta import run_metadata

N_FILES = 10_000
FILE_BYTES = 256 * 1024
"""About a 10-s low-resolution clip. Planning a rerun costs per file, hashing per byte, so the
planning share falls as files grow: `rerun_planning_us_per_file` is the size-free figure."""


def rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise RuntimeError("no rchar in /proc/self/io")


def make_inputs(folder: Path, n: int, size: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"{i // 1000:03d}" / f"clip-{i:06d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.bytes(size))
        paths.append(path)
    return paths


def drop_page_cache() -> bool:
    """Empty the kernel's page cache (root only), so the first run reads its inputs from disk
    as a real first run does; False where that is not allowed (then it reads from memory, and
    the first run's hashing time is a lower bound)."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def timed_plan(cache, paths, extractors, families) -> tuple[float, int, list]:
    from harmcache.extract.pipeline import plan_jobs

    before, start = rchar(), time.perf_counter()
    jobs, settled, _ = plan_jobs(cache, paths, extractors, families)
    return time.perf_counter() - start, rchar() - before, jobs


def commit_all(cache, family, jobs) -> None:
    """Shards for every planned video, in the real format: the inputs become 'already cached'."""
    from harmcache.types import FeatureRecord, VideoFeatures, VideoInfo

    info = VideoInfo(8, 8.0, 1.0, 64, 32, "synthetic")
    record = FeatureRecord(np.ones((2, 4), np.float32), np.arange(2), np.arange(2) / 8.0)
    for start in range(0, len(jobs), 64):
        chunk = jobs[start : start + 64]
        cache.commit(family, [VideoFeatures(j.video_id, info, j.path, record) for j in chunk])


def run(results_dir: Path, quick: bool = False) -> dict:
    from harmcache.extract.pipeline import build_extractors
    from harmcache.extractors.base import ExtractSettings, WeightsSource
    from harmcache.store.cache import FeatureCache
    from harmcache.store.family import Family

    n = 1_000 if quick else N_FILES
    settings = ExtractSettings(weights=WeightsSource(random_init=True))
    extractors = build_extractors(["clip"], settings)
    families = [Family.from_spec(ex.spec()) for ex in extractors]
    with tempfile.TemporaryDirectory(prefix="harmcache-rerun-") as tmp:
        root = Path(tmp)
        paths = make_inputs(root / "inputs", n, FILE_BYTES)
        cold = drop_page_cache()
        with FeatureCache(root / "cache", create=True) as cache:
            first_s, first_bytes, jobs = timed_plan(cache, paths, extractors, families)
            assert len(jobs) == n, "every input is new on the first run"
            commit_all(cache, families[0], jobs)
        drop_page_cache()  # the rerun's index reads come from disk too
        with FeatureCache(root / "cache") as cache:  # a new process would open it afresh too
            rerun_s, rerun_bytes, rerun_jobs = timed_plan(cache, paths, extractors, families)
            assert not rerun_jobs, "every input is cached on the rerun"
            sightings = len((root / "cache" / "sources.jsonl").read_text().splitlines())
        blob = os.urandom(FILE_BYTES * min(n, 2_000))
        start = time.perf_counter()
        hashlib.sha256(blob).hexdigest()
        sha_mb_s = len(blob) / 1e6 / (time.perf_counter() - start)
    input_bytes = n * FILE_BYTES
    result = {
        "summary": {
            "rerun_bytes_read_share": round(rerun_bytes / first_bytes, 5),
            "rerun_planning_share_of_first_hashing": round(rerun_s / first_s, 4),
            "targets": "bytes share <= 0.01, planning share <= 0.05",
            "first_run_hashing_s": round(first_s, 3),
            "rerun_planning_s": round(rerun_s, 3),
            "rerun_planning_us_per_file": round(rerun_s / n * 1e6, 1),
            "first_run_hash_rate_mb_s": round(input_bytes / 1e6 / first_s, 1),
            "sha256_in_memory_one_thread_mb_s": round(sha_mb_s, 1),
        },
        "inputs": {"files": n, "bytes_each": FILE_BYTES, "total_bytes": input_bytes},
        "first_run_read_from_disk": cold,
        "bytes_read": {"first_run": first_bytes, "rerun": rerun_bytes},
        "sightings_after_two_runs": sightings,
        "meta": run_metadata(),
    }
    name = "rerun-cpu-quick.json" if quick else "rerun-cpu.json"
    (results_dir / name).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    import sys

    out = run(Path(__file__).resolve().parent / "results", quick="--quick" in sys.argv)
    print(json.dumps(out["summary"], indent=2))
