"""Audio extraction throughput: seconds of sound embedded per second, against the speed of
decoding and resampling the same sound track (the physical limit: the extractor cannot be
faster than reading its input).

Measures, on one file with a 44.1 kHz stereo AAC track (speech-like noise bursts over a hum)
and a tiny picture, each repeated and the fastest run kept:

- `decode_resample`: `read_audio` (PyAV demux + decode + swresample to 16 kHz, channels
  averaged), every sample read: the physical limit.
- `frontend`: the same plus VGGish's log-mel examples (`segments`), no model.
- `extractor`: `AudioExtractor.extract_file` at default settings (batch 16, random init: the
  same architecture and compute as the real weights), on this process's torch threads.
- `pipeline`: `run_extraction(..., ["audio"])` into a new cache (hash, probe the picture, sound,
  commit), the way `harmcache extract --extractors audio` runs.

    .venv/bin/python -m bench --only audio [--quick]   # -> results/audio-<device>.json
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

REPO = Path(__file__).resolve().parent.parent
RATE = 44100


def write_clip(path: Path, seconds: int, seed: int = 0) -> Path:
    """A small picture at 8 fps and a stereo sound track: a hum, noise, and bursts."""
    from harmcache.video.encode import write_video

    rng = np.random.default_rng(seed)
    n = seconds * RATE
    t = np.arange(n) / RATE
    sound = 0.05 * np.sin(2 * np.pi * 150 * t) + rng.normal(0, 0.02, n)
    for start in rng.integers(0, n - RATE // 2, size=seconds // 3):
        sound[start : start + RATE // 4] += rng.uniform(-0.5, 0.5, RATE // 4)
    stereo = np.clip(np.stack([sound, np.roll(sound, 7)]), -1, 1).astype(np.float32)
    frames = rng.integers(0, 256, size=(seconds * 8, 48, 64, 3), dtype=np.uint8)
    return write_video(path, frames, fps=8, codec="libx264", audio=stereo, sample_rate=RATE)


def best_of(repeats: int, fn) -> tuple[float, list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), times, out


def measure(path: Path, repeats: int, tmp: Path) -> dict:
    from harmcache.extract.pipeline import build_extractors, run_extraction
    from harmcache.extractors.audio import EXAMPLE_SAMPLES, segments
    from harmcache.extractors.base import ExtractSettings, WeightsSource, get_extractor
    from harmcache.video.audio import SAMPLE_RATE, read_audio
    from harmcache.video.decode import VideoSource

    settings = ExtractSettings(weights=WeightsSource(random_init=True))
    block = settings.batch_size * EXAMPLE_SAMPLES
    source = VideoSource(path)
    decode_s, decode_all, samples = best_of(
        repeats, lambda: sum(len(b) for b in read_audio(path, block=block))
    )
    frontend_s, frontend_all, _ = best_of(
        repeats,
        lambda: sum(len(x) for x in segments(read_audio(path, block=block), settings.batch_size)),
    )
    extractor = get_extractor("audio")(settings)
    extractor.load()
    extract_s, extract_all, record = best_of(
        repeats, lambda: extractor.extract_file(path, source.info, source.times)
    )

    def pipeline() -> None:
        cache = tmp / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        summary = run_extraction([path], cache, build_extractors(["audio"], settings), workers=0)
        assert summary.inputs[0].status == "extracted", summary.inputs[0]

    pipeline()  # the first run pays for loading the model
    pipeline_s, pipeline_all, _ = best_of(repeats, pipeline)
    seconds = samples / SAMPLE_RATE
    return {
        "audio_seconds": seconds,
        "rows": len(record.features),
        "seconds": {
            "decode_resample": decode_s,
            "frontend": frontend_s,
            "extractor": extract_s,
            "pipeline": pipeline_s,
        },
        "seconds_all": {
            "decode_resample": decode_all,
            "frontend": frontend_all,
            "extractor": extract_all,
            "pipeline": pipeline_all,
        },
        "median_extractor_s": statistics.median(extract_all),
    }


def run(results_dir: str | Path, *, quick: bool = False) -> dict:
    import torch

    from bench.meta import run_metadata

    results_dir = Path(results_dir)
    clip_seconds = 30 if quick else 300
    repeats = 2 if quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = write_clip(tmp / "sound.mp4", clip_seconds)
        size_mb = path.stat().st_size / 1e6
        m = measure(path, repeats, tmp)
    audio_s, s = m["audio_seconds"], m["seconds"]
    rate = {name: audio_s / value for name, value in s.items()}
    summary = {
        "extractor_audio_s_per_s": round(rate["extractor"], 1),
        "decode_resample_audio_s_per_s (physical limit)": round(rate["decode_resample"], 1),
        "extractor_vs_limit": round(rate["extractor"] / rate["decode_resample"], 4),
        "pipeline_audio_s_per_s": round(rate["pipeline"], 1),
        "frontend_audio_s_per_s": round(rate["frontend"], 1),
        "model_share_of_extractor": round((s["extractor"] - s["frontend"]) / s["extractor"], 3),
        "audio_seconds": round(audio_s, 2),
        "rows": m["rows"],
        "torch_threads": torch.get_num_threads(),
    }
    device = "cpu"
    results = {
        "what": "audio extraction: seconds of sound per second vs PyAV decode + resample",
        "meta": run_metadata(),
        "summary": summary,
        "clip": {
            "seconds": clip_seconds,
            "rate": RATE,
            "channels": 2,
            "codec": "aac",
            "file_mb": size_mb,
        },  # fmt: skip
        "settings": {"batch_size": 16, "weights": "random-init", "device": device},
        "measured": m,
        "load_average": os.getloadavg(),
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    name = f"audio-{device}-quick.json" if quick else f"audio-{device}.json"
    (results_dir / name).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    print(
        json.dumps(
            run(Path(__file__).parent / "results", quick="--quick" in sys.argv)["summary"], indent=2
        )
    )
