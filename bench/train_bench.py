"""Stage-two speed: a Transformer epoch from the cache, and the threshold sweep.

- builds a real HDF5 cache with FeatureCache.commit: 4,000 synthetic videos, 32 frames each,
  CLIP (512-d) and YOLO (160-d) per frame and SlowFast (2304-d) on 4 windows;
- times loading every video's features from it (`load_sequences`);
- times one Transformer epoch (a training pass over all 4,000 videos plus scoring 800 for
  validation) at the default settings, and, on 1,000 of the videos, at other batch sizes,
  thread counts and token caps (compare their videos_per_s);
- times `sweep` with 1,000 bootstrap replicates on 100,000 scores (grid and every-score).

Everything is measured on this machine at run time; the load average is recorded because on a
shared machine it moves the numbers a lot.

    python -m bench --only train [--quick]   # writes bench/results/train-cpu.json

`extraction_ratio(result, seconds_per_video)` adds the cache-vs-decode-and-extract ratio once
the extraction benchmark has measured per-video extraction seconds.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.meta import run_metadata

SHARD = 100
DIMS = {"clip": 512, "yolo": 160, "slowfast": 2304}
ROWS = {"clip": 32, "yolo": 32, "slowfast": 4}
FULL = {"videos": 4000, "val": 800, "variant_videos": 1000, "scores": 100_000, "replicates": 1000}
QUICK = {"videos": 400, "val": 100, "variant_videos": 200, "scores": 100_000, "replicates": 1000}
# (label, transformer settings); the first is the default configuration.
VARIANTS = [
    ("default (batch 4, 1 thread)", {}),
    ("batch 4, 2 threads", {"threads": 2}),
    ("batch 32, 1 thread", {"batch_size": 32}),
    ("batch 4, max_rows 16", {"max_rows": 16}),
]


def build_cache(root: Path, n: int, seed: int = 0):
    """n videos with a planted signal, committed to three random-init families."""
    from harmcache.extractors.base import FeatureRecord
    from harmcache.store.cache import FeatureCache
    from harmcache.store.family import Family
    from harmcache.types import VideoFeatures, VideoInfo

    rng = np.random.default_rng(seed)
    cache = FeatureCache(root, create=True)
    ids = [f"{i:064x}" for i in range(n)]
    labels = (rng.random(n) < 0.3).astype(np.int64)
    duration = 10.0
    info = VideoInfo(300, 30.0, duration, 640, 360, "synthetic")
    cache.record_sources([(f"/bench/{i}.mp4", vid) for i, vid in enumerate(ids)])
    for extractor, dim in DIMS.items():
        family = Family.from_spec(
            {
                "extractor": extractor,
                "version": "bench",
                "weights": {"kind": "random-init", "seed": 0},
                "options": {"frames": 32, "windows": 4},
            }
        )
        rows = ROWS[extractor]
        stamps = (np.arange(rows) + 0.5) * duration / rows
        for start in range(0, n, SHARD):
            items = []
            for i in range(start, min(start + SHARD, n)):
                x = rng.standard_normal((rows, dim), dtype=np.float32)
                x[:, :4] += labels[i]
                record = FeatureRecord(x, np.round(stamps * 30).astype(np.int64), stamps)
                items.append(VideoFeatures(ids[i], info, f"/bench/{i}.mp4", record))
            cache.commit(family, items)
    return cache, ids, labels


def time_epoch(train, val, settings: dict) -> dict:
    from harmcache.heads.transformer import TransformerHead

    # epoch_s is the head's own epoch timer (training pass + scoring `val`); scoring `val` is
    # timed again on its own so the training pass can be reported apart.
    reports = []
    head = TransformerHead(epochs=1, **settings)
    head.fit(train, eval_set=val, on_epoch=reports.append)
    start = time.perf_counter()
    head.predict_proba(val)
    scoring = time.perf_counter() - start
    return {
        "epoch_s": round(reports[0].seconds, 2),
        "train_pass_s": round(reports[0].seconds - scoring, 2),
        "val_scoring_s": round(scoring, 2),
        "videos_per_s": round(len(train) / max(reports[0].seconds - scoring, 1e-9), 1),
    }


def time_sweep(n: int, replicates: int, repeats: int = 3) -> dict:
    from harmcache.decisions.sweep import sweep

    rng = np.random.default_rng(0)
    y = rng.random(n) < 0.08
    s = np.clip(rng.normal(0.3 + 0.3 * y, 0.15), 0, 1)
    out = {}
    for grid in ("0.01:0.99:0.01", "scores"):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            sweep(y, s, "f1", grid, bootstrap=replicates, seed=0)
            times.append(time.perf_counter() - start)
        out[grid] = round(statistics.median(times), 3)
    return out


def run(results_dir: Path, quick: bool = False) -> dict:
    """Measure, write results_dir/train-cpu.json, return the result."""
    import torch

    from harmcache.heads.data import SequenceData
    from harmcache.store.family import Family  # noqa: F401  (import cost outside the timers)
    from harmcache.train.features import load_sequences

    size = QUICK if quick else FULL
    variants = VARIANTS[:2] if quick else VARIANTS
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="harmcache-train-bench-"))
    try:
        start = time.perf_counter()
        cache, ids, labels = build_cache(work / "cache", size["videos"])
        build_s = time.perf_counter() - start
        cache_bytes = sum(p.stat().st_size for p in (work / "cache").rglob("*.h5"))
        families = {f.extractor: f for f in cache.families()}
        start = time.perf_counter()
        data = load_sequences(cache, families, ids, labels)
        load_s = time.perf_counter() - start
        val: SequenceData = data.subset(np.arange(size["val"]))
        epochs = {}
        # The default runs on every video; the others on a subset, so that a slow setting
        # (two OpenMP threads on a busy machine) cannot hold the benchmark for many minutes.
        subset = data.subset(np.arange(size["variant_videos"]))
        for i, (label, settings) in enumerate(variants):
            train = data if i == 0 else subset
            epochs[label] = {
                "settings": settings,
                "train_videos": len(train),
                **time_epoch(train, val, settings),
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sweep_s = time_sweep(size["scores"], size["replicates"])
    default = epochs[variants[0][0]]
    result = {
        "benchmark": "train",
        "quick": quick,
        "meta": run_metadata(),
        # What this benchmark ran with; the commit, machine and device are in `meta`.
        "environment": {
            "host": platform.node(),
            "torch": torch.__version__,
            "torch_default_threads": torch.get_num_threads(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "cache": {
            "videos": size["videos"],
            "rows_per_video": ROWS,
            "dims": DIMS,
            "build_s": round(build_s, 2),
            "bytes": cache_bytes,
            "load_s": round(load_s, 2),
        },
        "transformer_epoch": epochs,
        "sweep_with_bootstrap_s": {
            "scores": size["scores"],
            "replicates": size["replicates"],
            **sweep_s,
        },
        "cache_vs_extract": None,  # filled by extraction_ratio below
        "summary": {
            "videos": size["videos"],
            "cache_load_s": round(load_s, 2),
            "epoch_s_default": default["epoch_s"],
            "epoch_target_s": 30,
            "sweep_1000_bootstrap_100k_s": sweep_s["0.01:0.99:0.01"],
            "sweep_scores_grid_s": sweep_s["scores"],
            "load_average_before": round(load_before[0], 2),
        },
    }
    for label, entry in epochs.items():
        result["summary"][f"train videos/s {label}"] = entry["videos_per_s"]
    extraction_ratio(result, extract_seconds_per_video(n_videos=1 if quick else 2))
    result["summary"]["iteration_ratio"] = result["cache_vs_extract"]["speedup"]
    write(results_dir, result)
    return result


def extract_seconds_per_video(n_videos: int) -> float:
    """Seconds to decode and extract one 10-s 360p clip with all three backbones at their
    default settings (random init, same compute as real weights): what an epoch that reads
    videos, as earlier experiments trained (see docs/design-notes.md#extract-once), pays for every
    video."""
    from harmcache.demo import demo_frames
    from harmcache.extract.pipeline import build_extractors, run_extraction
    from harmcache.extractors.base import ExtractSettings, WeightsSource
    from harmcache.video.encode import write_video

    work = Path(tempfile.mkdtemp(prefix="harmcache-extract-epoch-"))
    try:
        rng = np.random.default_rng(0)
        for i in range(n_videos):
            frames = demo_frames(bool(i % 2), rng, n_frames=300, size=(360, 640))
            write_video(work / "videos" / f"v{i}.mp4", frames, fps=30, codec="libx264")
        settings = ExtractSettings(weights=WeightsSource(random_init=True))
        extractors = build_extractors(["yolo", "clip", "slowfast"], settings)
        for ex in extractors:
            ex.load()  # model loading is paid once per training run, not per video
        start = time.perf_counter()
        run_extraction([work / "videos"], work / "cache", extractors, workers=1)
        return (time.perf_counter() - start) / n_videos
    finally:
        shutil.rmtree(work, ignore_errors=True)


def extraction_ratio(result: dict, seconds_per_video: float) -> dict:
    """Add how much faster an epoch from the cache is than one that decodes and extracts every
    video (extraction time per video measured by the extraction benchmark)."""
    n = result["cache"]["videos"]
    epoch = result["transformer_epoch"][VARIANTS[0][0]]["epoch_s"]
    from_cache = epoch + result["cache"]["load_s"]
    from_video = epoch + n * seconds_per_video
    result["cache_vs_extract"] = {
        "extract_s_per_video": seconds_per_video,
        "cache_epoch_s": round(from_cache, 2),
        "decode_and_extract_epoch_s": round(from_video, 2),
        "speedup": round(from_video / from_cache, 1),
    }
    return result


def write(results_dir: Path, result: dict) -> Path:
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / "train-cpu.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


if __name__ == "__main__":
    import sys

    out = run(Path(__file__).resolve().parent / "results", quick="--quick" in sys.argv)
    print(json.dumps(out["summary"], indent=2))
