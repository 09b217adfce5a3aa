"""Decode cost per 10-second clip on one CPU core: the decode side of the capacity model in
docs/scale-out.md.

Encodes a synthetic 10-s clip (libx264, yuv420p, 30 fps) at 720p and 360p, then times
`decode_job` exactly as an extraction run calls it: probe, then decode the union of the frames
the default spec needs (32 uniform frames + 4 SlowFast windows of 32 at stride 2) and shrink them
to the 360-pixel decode size. With `models=True` it also times each backbone at default settings
on `device` (random init: same architecture, same compute as the real weights).

    python bench/decode_cost.py [--models [--device cuda]]   # writes bench/results/decode-cpu.json
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SECONDS, FPS = 10, 30
SIZES = {"720p": (720, 1280), "360p": (360, 640)}
EXTRACTORS = ("yolo", "clip", "slowfast")


def synthetic_clip(path: Path, height: int, width: int, seed: int = 0) -> Path:
    """A panning smooth texture, a moving box and grain: x264 (crf 23) makes ~2-3 Mbit/s of it
    at 720p, like web video; pure noise would not compress and would overstate decode cost."""
    import cv2

    from harmcache.video.encode import write_video

    rng = np.random.default_rng(seed)
    pad = SECONDS * FPS * 2
    texture = rng.integers(0, 256, size=(height, width + pad, 3), dtype=np.uint8)
    texture = cv2.GaussianBlur(texture, (0, 0), sigmaX=3)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX)
    frames = np.empty((SECONDS * FPS, height, width, 3), dtype=np.uint8)
    box = max(8, height // 6)
    for t in range(len(frames)):
        frame = texture[:, 2 * t : 2 * t + width].astype(np.int16)
        frame += rng.integers(-10, 11, size=frame.shape, dtype=np.int16)  # sensor grain
        x = (7 * t) % (width - box)
        frame[height // 3 : height // 3 + box, x : x + box] = (220, 40, 40)
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return write_video(path, frames, fps=FPS, codec="libx264")


def time_decode(path: Path, repeats: int) -> dict:
    from harmcache.extract.jobs import VideoJob, decode_job
    from harmcache.extractors.base import ExtractSettings, WeightsSource
    from harmcache.video.decode import VideoSource

    settings = ExtractSettings(weights=WeightsSource(random_init=True))  # the default spec
    job = VideoJob(str(path), "bench", tuple((name, settings) for name in EXTRACTORS))
    total, probe, result = [], [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = decode_job(job)
        total.append(time.perf_counter() - start)
        assert result.error is None, result.error
        start = time.perf_counter()
        with VideoSource(path):  # the probe alone: open the file and read its packets' timeline
            probe.append(time.perf_counter() - start)
    decoded = result.decoded[settings.decode_short_side]
    size = path.stat().st_size
    return {
        # min is the best estimate of one uncontended core; median shows the noise.
        "seconds_per_clip_min": min(total),
        "seconds_per_clip_median": statistics.median(total),
        "seconds_all": total,
        "probe_seconds_min": min(probe),
        "frames_decoded": int(len(decoded.indices)),
        "decoded_shape": list(decoded.frames.shape),
        "file_mb": size / 1e6,
        "bitrate_mbps": size * 8 / SECONDS / 1e6,
    }


def time_sha256(path: Path, repeats: int = 3) -> float:
    """MB/s of the content hash the driver computes for every input while planning."""
    from harmcache.hashing import sha256_file

    start = time.perf_counter()
    for _ in range(repeats):
        sha256_file(path)
    return path.stat().st_size * repeats / (time.perf_counter() - start) / 1e6


def time_models(path: Path, device: str, repeats: int) -> dict:
    """Seconds per clip for each backbone at default settings on `device`: one warm-up, then
    the fastest of `repeats` calls, as for decoding (`extract` returns features on the CPU, so
    CUDA work is finished when it returns)."""
    import torch

    from harmcache.extract.jobs import VideoJob, decode_job
    from harmcache.extractors.base import ExtractSettings, WeightsSource, get_extractor

    settings = ExtractSettings(device=device, weights=WeightsSource(random_init=True))
    job = VideoJob(str(path), "bench", tuple((name, settings) for name in EXTRACTORS))
    video = decode_job(job).decoded[settings.decode_short_side]
    out: dict = {"device": device, "torch_threads": torch.get_num_threads()}
    every: dict[str, list[float]] = {}
    for name in EXTRACTORS:
        extractor = get_extractor(name)(settings)
        extractor.load()
        extractor.extract(video)
        every[name] = []
        for _ in range(repeats):
            start = time.perf_counter()
            extractor.extract(video)
            every[name].append(time.perf_counter() - start)
        out[name] = min(every[name])
        del extractor  # one backbone in memory at a time
    out["seconds_all"] = every
    return out


def run(
    results_dir: str | Path,
    *,
    quick: bool = False,
    models: bool = False,
    device: str = "cpu",
) -> dict:
    """Measure, write `results_dir/decode-cpu[-quick].json` and return what was written."""
    from bench.meta import run_metadata

    results_dir = Path(results_dir)
    repeats = 2 if quick else 5
    results: dict = {
        "what": "decode_job seconds per 10-s 30-fps libx264 clip, one core, default frame plan",
        "meta": run_metadata(),
        "decode": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        clips = {
            label: synthetic_clip(Path(tmp) / f"{label}.mp4", h, w)
            for label, (h, w) in SIZES.items()
        }
        for label, clip in clips.items():
            results["decode"][label] = time_decode(clip, repeats)
        results["sha256_mb_per_s"] = time_sha256(clips["720p"])
        if models:
            results["models_seconds_per_clip"] = time_models(
                clips["720p"], device, repeats=1 if quick else 3
            )
    results_dir.mkdir(parents=True, exist_ok=True)
    name = "decode-cpu-quick.json" if quick else "decode-cpu.json"
    (results_dir / name).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    # Run as a script, as docs/scale-out.md shows, the repository root is not on the path.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    args = sys.argv[1:]
    device = args[args.index("--device") + 1] if "--device" in args else "cpu"
    report = run(Path(__file__).parent / "results", models="--models" in args, device=device)
    print(json.dumps(report, indent=2))
