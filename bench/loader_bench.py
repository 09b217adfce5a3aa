"""Stage two from the columnar cache through the streaming loader (issue 9's targets).

- read rate: one loader epoch (shard slices → shuffle buffer → padded float32 batches) over
  4,000 cached videos in 100-video shards (`train_bench.build_cache`: 32 CLIP 512-d + 32 YOLO
  160-d rows and 4 SlowFast 2304-d windows each), against a contiguous HDF5 read of the same
  bytes (the `cache_read_bench` measurement), side by side and alternating; target >= 30%;
- loader share: one default Transformer epoch over those videos through
  `TransformerHead.fit_stream`, with the time spent waiting on the loader measured; target
  <= 10%;
- small shards: the same videos committed 8 to a shard (extract's default `--shard-size`), one
  loader epoch beside the contiguous read, then again after `cache compact`;
- peak RSS: a Transformer epoch through the loader at 4,000 and at 40,000 cached videos, each in
  a fresh child process, on caches in the real format built with `FeatureCache.commit` but with
  small feature widths (clip 16, yolo 8, slowfast 24; same rows per video) so 40,000 videos
  build in seconds; target: the 40,000 peak within 1.2x of the 4,000 one.

    python -m bench --only loader [--quick]   # writes bench/results/loader-cpu.json
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from bench.meta import run_metadata
from bench.train_bench import DIMS, ROWS, build_cache

FULL = {"videos": 4000, "repeats": 5, "rss_small": 4000, "rss_large": 40000}
QUICK = {"videos": 400, "repeats": 2, "rss_small": 400, "rss_large": 4000}
SMALL_DIMS = {"clip": 16, "yolo": 8, "slowfast": 24}
LOADER = {"batch_size": 4, "buffer_videos": 1024, "slice_videos": 100, "seed": 0}
RSS_HEAD = {"d_model": 16, "layers": 1, "dim_feedforward": 32, "batch_size": 64, "epochs": 1}
SMALL_SHARD = 8
"""extract's default --shard-size."""
TARGETS = {"read_rate_vs_contiguous": 0.30, "rss_ratio": 1.2, "loader_share": 0.10}


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _stream(cache, ids, labels, **kw):
    from harmcache.train.loader import StreamingLoader

    families = {f.extractor: f for f in cache.families()}
    return StreamingLoader(cache, families, ids, labels, **{**LOADER, **kw})


def _rate_and_share(size: dict, work: Path) -> dict:
    from harmcache.heads.transformer import TransformerHead

    cache, ids, labels = build_cache(work / "cache", size["videos"])
    stream = _stream(cache, ids, labels)
    payload = 0
    for batch in stream.epoch(0):  # also warms the page cache
        for m in batch.modalities.values():
            payload += int(m.mask.sum()) * m.dim * 4 + int(m.mask.sum()) * 8  # rows + stamps
    contiguous = work / "contiguous.h5"
    with h5py.File(contiguous, "w") as f:
        f.create_dataset("x", data=np.random.default_rng(0).standard_normal(payload // 4, "f4"))

    def loader_epoch() -> None:
        for _ in stream.epoch(1):
            pass

    def read_contiguous() -> None:
        with h5py.File(contiguous, "r") as f:
            f["x"][()]

    read_contiguous()
    times: dict[str, list[float]] = {"loader_epoch": [], "contiguous": []}
    for _ in range(size["repeats"]):
        times["loader_epoch"].append(_timed(loader_epoch))
        times["contiguous"].append(_timed(read_contiguous))
    median = {k: statistics.median(v) for k, v in times.items()}

    # The loader's share of a default Transformer epoch: time spent inside the loader's next().
    waited = [0.0]

    class Timed:
        dims = stream.dims
        labels = stream.labels

        def moments(self):
            return stream.moments()

        def epoch(self, epoch):
            it = stream.epoch(epoch)
            while True:
                start = time.perf_counter()
                try:
                    batch = next(it)
                except StopIteration:
                    waited[0] += time.perf_counter() - start
                    return
                waited[0] += time.perf_counter() - start
                yield batch

    reports = []
    start = time.perf_counter()
    TransformerHead(epochs=1).fit_stream(Timed(), on_epoch=reports.append)
    fit_s = time.perf_counter() - start
    epoch_s = reports[0].seconds
    cache.close()
    return {
        "payload_bytes": payload,
        "seconds": {k: [round(t, 4) for t in v] for k, v in times.items()},
        "median_s": {k: round(v, 4) for k, v in median.items()},
        "mb_per_s": {k: round(payload / v / 1e6, 1) for k, v in median.items()},
        "read_rate_vs_contiguous": round(median["contiguous"] / median["loader_epoch"], 3),
        "transformer_epoch": {
            "head": "TransformerHead defaults (batch 4, 1 thread)",
            "epoch_s": round(epoch_s, 2),
            "fit_s_with_moments_pass": round(fit_s, 2),
            "loader_s": round(waited[0], 3),
            "loader_share": round(waited[0] / epoch_s, 4),
        },
    }


def _small_shards(size: dict, work: Path) -> dict:
    """The same videos committed 8 to a shard (extract's default --shard-size): one loader
    epoch, then again after `maintenance.compact`, each beside the contiguous read."""
    import bench.train_bench as tb
    from harmcache.store import maintenance

    saved, tb.SHARD = tb.SHARD, SMALL_SHARD
    try:
        cache, ids, labels = build_cache(work / "small-shards", size["videos"])
    finally:
        tb.SHARD = saved
    contiguous = work / "contiguous.h5"

    def read_contiguous() -> None:
        with h5py.File(contiguous, "r") as f:
            f["x"][()]

    def measure() -> dict:
        stream = _stream(cache, ids, labels)
        for _ in stream.epoch(0):  # warms the page cache
            pass
        times = {"loader_epoch": [], "contiguous": []}
        for k in range(size["repeats"]):
            times["loader_epoch"].append(_timed(lambda k=k: [None for _ in stream.epoch(k + 1)]))
            times["contiguous"].append(_timed(read_contiguous))
        median = {key: statistics.median(v) for key, v in times.items()}
        shards = len(list((work / "small-shards").rglob("shard-*.h5")))
        return {
            "shards": shards,
            "median_s": {key: round(v, 4) for key, v in median.items()},
            "read_rate_vs_contiguous": round(median["contiguous"] / median["loader_epoch"], 3),
        }

    before = measure()
    start = time.perf_counter()
    report = maintenance.compact(cache)
    compact_s = time.perf_counter() - start
    after = measure()
    cache.close()
    return {
        "videos_per_shard": SMALL_SHARD,
        "as_extracted": before,
        "after_compact": {**after, "compact_s": round(compact_s, 2), "merged": report.merged},
        "speedup": round(before["median_s"]["loader_epoch"] / after["median_s"]["loader_epoch"], 2),
    }


def _child_epoch(root: str) -> None:
    """In a fresh process: one Transformer epoch through the loader; print the peak RSS."""
    from harmcache.heads.transformer import TransformerHead
    from harmcache.store.cache import FeatureCache

    cache = FeatureCache(root)
    families = {f.extractor: f for f in cache.families()}
    ids = sorted(cache.committed(families["clip"]))
    labels = (np.arange(len(ids)) % 3 == 0).astype(np.int64)
    before = _hwm_kb()
    start = time.perf_counter()
    stream = _stream(cache, ids, labels, batch_size=RSS_HEAD["batch_size"])
    TransformerHead(**RSS_HEAD).fit_stream(stream)
    seconds = time.perf_counter() - start
    peak = _hwm_kb()
    row = {"videos": len(ids), "rss_before_kb": before, "peak_rss_kb": peak}
    print(json.dumps({**row, "epoch_s": round(seconds, 2), "peak_buffer": stream.peak_buffer_}))


def _hwm_kb() -> int:
    """This process's peak RSS. Not ru_maxrss: across fork + exec it keeps the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _small_cache(root: Path, n: int) -> int:
    import bench.train_bench as tb

    saved = dict(tb.DIMS)
    tb.DIMS.clear()
    tb.DIMS.update(SMALL_DIMS)
    try:
        build_cache(root, n)[0].close()
    finally:
        tb.DIMS.clear()
        tb.DIMS.update(saved)
    return sum(p.stat().st_size for p in root.rglob("*.h5"))


def _rss(size: dict, work: Path) -> dict:
    out = {}
    for key in ("rss_small", "rss_large"):
        root = work / key
        start = time.perf_counter()
        nbytes = _small_cache(root, size[key])
        build_s = time.perf_counter() - start
        run = subprocess.run(
            [sys.executable, "-m", "bench.loader_bench", "--child", str(root)],
            capture_output=True, text=True, check=True,
            cwd=Path(__file__).resolve().parent.parent,
        )  # fmt: skip
        row = json.loads(run.stdout.strip().splitlines()[-1])
        out[str(size[key])] = {**row, "cache_bytes": nbytes, "build_s": round(build_s, 1)}
        shutil.rmtree(root, ignore_errors=True)
    small, large = (out[str(size[k])]["peak_rss_kb"] for k in ("rss_small", "rss_large"))
    return {
        "dims": SMALL_DIMS,
        "rows_per_video": ROWS,
        "head": RSS_HEAD,
        "loader": {**LOADER, "batch_size": RSS_HEAD["batch_size"]},
        "runs": out,
        "rss_ratio": round(large / small, 3),
    }


def run(results_dir: Path, quick: bool = False) -> dict:
    """Measure, write results_dir/loader-cpu[-quick].json, return the result."""
    size = QUICK if quick else FULL
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="harmcache-loader-bench-"))
    try:
        rate = _rate_and_share(size, work)
        shutil.rmtree(work / "cache", ignore_errors=True)
        small = _small_shards(size, work)
        shutil.rmtree(work / "small-shards", ignore_errors=True)
        rss = _rss(size, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "benchmark": "loader",
        "quick": quick,
        "meta": run_metadata(),
        "environment": {
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "cache": {"videos": size["videos"], "rows_per_video": ROWS, "dims": DIMS},
        "loader": LOADER,
        "read_rate": rate,
        "small_shards": small,
        "peak_rss": rss,
        "targets": TARGETS,
        "summary": {
            "videos": size["videos"],
            "read_rate_vs_contiguous": rate["read_rate_vs_contiguous"],
            "loader_epoch_mb_per_s": rate["mb_per_s"]["loader_epoch"],
            "contiguous_mb_per_s": rate["mb_per_s"]["contiguous"],
            "transformer_epoch_s": rate["transformer_epoch"]["epoch_s"],
            "loader_share": rate["transformer_epoch"]["loader_share"],
            "small_shards_read_rate": small["as_extracted"]["read_rate_vs_contiguous"],
            "compacted_read_rate": small["after_compact"]["read_rate_vs_contiguous"],
            "rss_ratio": rss["rss_ratio"],
            "rss_videos": [size["rss_small"], size["rss_large"]],
            "load_average_before": round(load_before[0], 2),
        },
    }
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    name = "loader-cpu-quick.json" if quick else "loader-cpu.json"
    (results_dir / name).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    if "--child" in sys.argv:
        _child_epoch(sys.argv[sys.argv.index("--child") + 1])
    else:
        out = run(Path(__file__).resolve().parent / "results", quick="--quick" in sys.argv)
        print(json.dumps(out["summary"], indent=2))
