"""Stage-one throughput, decode/model overlap and memory bounds of `harmcache extract`.

The claim under test: the pipeline overlaps decoding with the models, so an extraction costs
about its slower stage rather than the sum of both. On one set of synthetic clips it measures
- decode-only: the pipeline's own decode stream (worker processes, same `workers`), no models.
  This is the physical limit on the decode side: the decoder's own speed on the same files;
- model-only: each backbone on pre-decoded videos, as videos/s and frames/s per extractor;
- end-to-end: `run_extraction` with all three backbones into a fresh cache;
- hidden share = (decode + models - end_to_end) / min(decode, models), all in wall seconds:
  the fraction of the cheaper stage that hid behind the dearer one. 1.0 is perfect overlap
  (end-to-end = the slower stage), 0 is fully serial (end-to-end = decode + models); noise can
  push it past either end, and the smaller the cheaper stage, the more it amplifies the noise;
- pipeline efficiency = max(decode, models) / end_to_end. When one stage is far cheaper than
  the other this is close to 1.0 whatever the overlap, so the hidden share tests the claim and
  the efficiency says what the overlap is worth;
- on a CPU both stages share the cores, so the JSON also gives the floor their summed CPU time
  sets, cpu_floor = (decode CPU-s + models CPU-s) / cores, the efficiency against it, and the
  most that could hide above that floor: hidden_share_ceiling = the hidden share with
  end_to_end = max(decode, models, cpu_floor);
- peak RSS of a 10- and a 50-video extraction, each in a fresh interpreter so peaks do not mix;
- on CUDA also GPU utilisation during the end-to-end run and peak GPU memory per batch size.

The three phases run back to back on blocks of videos, so that on a shared machine they see the
same load; compare ratios from one run, not absolute times from different runs. On the CPU the
sizes are cut down to keep the run within minutes on two cores; on CUDA it uses 10-s 720p clips
at 30 fps and every backbone at its default settings.

    python -m bench --only extract [--quick]   # writes bench/results/extract-<device>.json
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from bench.meta import run_metadata

# Random-init backbones only: a benchmark must never reach for the network.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("HARMCACHE_OFFLINE", "1")

EXTRACTORS = ("yolo", "clip", "slowfast")
REPO = Path(__file__).resolve().parents[1]
LIBRARIES = (
    "torch",
    "torchvision",
    "ultralytics",
    "clip-anytorch",
    "pytorchvideo",
    "decord",
    "av",
    "numpy",
    "h5py",
    "opencv-python",
)


@dataclass(frozen=True)
class Profile:
    """What one benchmark run extracts, and how."""

    name: str
    n_videos: int
    """Clips in the decode-only, model-only and end-to-end runs."""
    distinct: int
    """Clips actually encoded; the others are re-muxed copies with new bytes (new video ids),
    which decode exactly as slowly as their originals but cost no encoding time."""
    seconds: float
    fps: int
    size: tuple[int, int]
    """(height, width) of the clips."""
    workers: int
    """Decode worker processes, as `harmcache extract --workers`."""
    settings: dict = field(default_factory=dict)
    """ExtractSettings keyword arguments (random-init weights are always added)."""
    block: int = 0
    """Videos per block of back-to-back decode-only, model-only and end-to-end runs (see
    `measure_phases`); 0 means one block of every video."""
    repeats: int = 1
    """Times each block runs its three phases; each phase keeps its fastest run."""
    rss_counts: tuple[int, int] = (10, 50)
    batch_sizes: tuple[int, ...] = ()
    """Batch sizes for the GPU-memory sweep (CUDA only)."""


def choose_profile(cuda: bool, quick: bool) -> Profile:
    cpus = os.cpu_count() or 2
    if cuda:
        # The GPU setting: full-default backbones; decoding gets all but two cores.
        return Profile(
            name="cuda-quick" if quick else "cuda",
            n_videos=16 if quick else 64,
            distinct=4,
            seconds=10,
            fps=30,
            size=(720, 1280),
            workers=max(1, cpus - 2),
            settings={"device": "cuda"},
            batch_sizes=(16, 64) if quick else (16, 32, 64, 128),
        )
    # Small enough for two noisy cores; CLIP stays at its fixed 224 input.
    workers = max(1, cpus - 1)
    if quick:
        tiny = {"frames": 4, "windows": 1, "yolo_imgsz": 128}
        tiny |= {"slowfast_short_side": 64, "slowfast_crop": 64}
        return Profile("cpu-quick", 6, 3, 3, 12, (96, 128), workers, tiny, repeats=2)
    small = {"frames": 8, "windows": 1, "yolo_imgsz": 320, "slowfast_crop": 128}
    return Profile("cpu", 16, 4, 5, 15, (180, 320), workers, small, block=8, repeats=3)


def make_settings(profile: Profile, **changes):
    from harmcache.extractors.base import ExtractSettings, WeightsSource

    kwargs = {**profile.settings, **changes}
    return ExtractSettings(weights=WeightsSource(random_init=True), **kwargs)


# --- clips -------------------------------------------------------------------------------------


def synthetic_frames(n: int, height: int, width: int, seed: int) -> np.ndarray:
    """A panning smooth texture, a moving box and grain. It compresses like ordinary video; pure
    noise would not, and would overstate the decode cost."""
    import cv2

    rng = np.random.default_rng(seed)
    wide = width + 2 * n
    coarse = rng.integers(
        0, 256, size=(max(2, height // 16), max(2, wide // 16), 3), dtype=np.uint8
    )
    texture = cv2.resize(coarse, (wide, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    grain = rng.integers(-8, 9, size=(4, height, width, 3), dtype=np.int16)  # a small bank
    box = max(8, height // 6)
    frames = np.empty((n, height, width, 3), dtype=np.uint8)
    for t in range(n):
        frame = texture[:, 2 * t : 2 * t + width] + grain[t % len(grain)]
        x = (7 * t) % max(1, width - box)
        frame[height // 3 : height // 3 + box, x : x + box] = (220, 40, 40)
        frames[t] = np.clip(frame, 0, 255)
    return frames


def tagged_copy(src: Path, dst: Path, tag: str) -> Path:
    """Re-mux `src` with a metadata tag: same packets, different bytes, so a different video id."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        out.metadata["comment"] = tag
        source = inp.streams.video[0]
        stream = out.add_stream_from_template(source)
        for packet in inp.demux(source):
            if packet.dts is None:  # the demuxer's end-of-stream flush packet
                continue
            packet.stream = stream
            out.mux(packet)
    return dst


def make_clips(folder: Path, profile: Profile, count: int) -> list[Path]:
    """`count` distinct mp4 files (libx264, yuv420p) of the profile's size and length."""
    from harmcache.video.encode import write_video

    h, w = profile.size
    n_frames = round(profile.seconds * profile.fps)
    originals = []
    for i in range(min(profile.distinct, count)):
        frames = synthetic_frames(n_frames, h, w, seed=i)
        path = folder / f"clip_{i:03d}.mp4"
        # libx264 in yuv420p at its default quality, as web video is; the default codec of
        # write_video is lossless and decodes far slower.
        originals.append(write_video(path, frames, fps=profile.fps, codec="libx264"))
        del frames
    copies = [
        tagged_copy(originals[i % len(originals)], folder / f"clip_{i:03d}.mp4", f"copy {i}")
        for i in range(len(originals), count)
    ]
    return originals + copies


def make_jobs(paths: list[Path], settings) -> list:
    """One VideoJob per clip that needs all three extractors, as a fresh cache would plan it."""
    from harmcache.extract.jobs import VideoJob
    from harmcache.hashing import sha256_file

    wanted = tuple((name, settings) for name in EXTRACTORS)
    return [VideoJob(str(p), sha256_file(p), wanted) for p in paths]


# --- the three timings -------------------------------------------------------------------------


def _cpu_seconds() -> float:
    """User + system seconds of this process and of its reaped children (decode workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _reap_workers(timeout: float = 30.0) -> None:
    """Wait until the decode workers have exited and been reaped. The pipeline shuts its pool
    down without waiting, and getrusage counts a child's CPU time only once it is reaped: without
    this a phase's decode CPU would land in whichever phase came next."""
    import multiprocessing as mp

    deadline = time.monotonic() + timeout
    while mp.active_children() and time.monotonic() < deadline:  # reaps those that exited
        time.sleep(0.01)


@contextlib.contextmanager
def clock(record: dict):
    """Fill `record` with the wall and CPU seconds of the block and the load average around it.

    On a shared machine the CPU seconds tell contention apart from slowness: torch's threads
    spin while a sibling is descheduled, so contended phases burn far more CPU for the same work.
    """
    cpu, wall, load = _cpu_seconds(), time.perf_counter(), os.getloadavg()[0]
    yield record
    record["seconds"] = time.perf_counter() - wall
    _reap_workers()  # outside the wall time: the pipeline does not wait for them either
    record["cpu_seconds"] = _cpu_seconds() - cpu
    record["load_avg_1min"] = [round(load, 2), round(os.getloadavg()[0], 2)]


def time_decode_only(jobs: list, workers: int) -> tuple[dict, list]:
    """The pipeline's own decode stream with no models behind it; returns the decoded videos."""
    # The pipeline's own stream, not a fresh pool: the same spawn, prefetch and hand-off costs.
    from harmcache.extract.decode_ahead import video_streams

    record: dict = {}
    streamed = []
    with clock(record):
        start = time.perf_counter()
        for stream in video_streams(jobs, workers):
            if stream.error is not None:
                raise RuntimeError(f"{stream.job.path}: {stream.error}")
            chunks = list(stream.chunks)  # each video's chunks before the next video's
            failed = [c.error for c in chunks if c.error is not None]
            if failed:
                raise RuntimeError(f"{stream.job.path}: {failed[0]}")
            record.setdefault("first_video_s", time.perf_counter() - start)
            streamed.append((stream.plan, chunks))
    return record, [whole_video(plan, chunks) for plan, chunks in streamed]


def whole_video(plan, chunks: list):
    """A streamed video's chunks as one DecodeResult, for the model-only phase (stitched after
    the decode clock stops: the pipeline itself never joins them)."""
    from harmcache.extract.jobs import DecodeResult
    from harmcache.video.decoded import DecodedVideo

    decoded = {}
    for side in plan.sides:
        parts = [c.decoded[side] for c in chunks if side in c.decoded]
        if len(parts) == 1:
            decoded[side] = parts[0]
            continue
        decoded[side] = DecodedVideo(
            plan.info,
            np.concatenate([part.indices for part in parts]),
            np.concatenate([part.frames for part in parts]),
            plan.times,
        )
    return DecodeResult(plan.job, decoded, None, sum(c.decode_seconds for c in chunks), plan)


def warm_up(decoded: list, extractors: list) -> None:
    """One untimed call each: the first pays one-off costs (allocator, kernel selection)."""
    for ex in extractors:
        ex.extract(decoded[0].decoded[ex.settings.decode_short_side])


def time_models(decoded: list, extractors: list) -> dict:
    """Every extractor on every pre-decoded video, video by video as the pipeline runs them,
    with each extractor's calls timed on their own."""
    seconds = dict.fromkeys((ex.name for ex in extractors), 0.0)
    frames = dict.fromkeys(seconds, 0)
    record: dict = {"extractor_seconds": seconds, "extractor_frames": frames}
    with clock(record):
        for result in decoded:
            for ex in extractors:
                video = result.decoded[ex.settings.decode_short_side]
                start = time.perf_counter()
                ex.extract(video)
                seconds[ex.name] += time.perf_counter() - start
                frames[ex.name] += np.asarray(ex.frame_indices(video.info)).size
    return record


def time_end_to_end(
    paths: list[Path], extractors: list, workers: int, sampler: GpuSampler | None
) -> dict:
    """`run_extraction` into a fresh cache with the already-loaded extractors."""
    from harmcache.extract.pipeline import run_extraction

    record: dict = {}
    with tempfile.TemporaryDirectory() as tmp, sampler or contextlib.nullcontext(), clock(record):
        summary = run_extraction(paths, Path(tmp) / "cache", extractors, workers=workers)
    if summary.count("extracted") != len(paths):
        raise RuntimeError(f"end-to-end extracted {summary.count('extracted')} of {len(paths)}")
    return record


def measure_phases(paths: list[Path], settings, extractors: list, profile: Profile) -> dict:
    """Decode-only, model-only and end-to-end, block by block.

    On a shared machine the load changes within seconds; running the three phases back to back
    on each block of `profile.block` videos makes them share it, where three long phases in a
    row would each see a different machine. Each end-to-end block pays its own pool start and
    pipeline fill, so the efficiency measured is, if anything, low.

    Other jobs only ever slow a phase down, so with `profile.repeats` > 1 each block runs its
    three phases that many times and each phase keeps its fastest run, the best estimate of its
    time on an unshared machine (as decode_cost takes the min); every run's time is kept in
    `repeat_seconds`.
    """
    sampler = GpuSampler() if settings.device.startswith("cuda") else None
    blocks, decode_seconds, decoded_mb, first_decoded = [], [], [], None
    step = profile.block or len(paths)
    for start in range(0, len(paths), step):
        block = paths[start : start + step]
        runs = []
        for repeat in range(profile.repeats):
            decode, decoded = time_decode_only(make_jobs(block, settings), profile.workers)
            if first_decoded is None:
                first_decoded = decoded
                warm_up(decoded, extractors)
            models = time_models(decoded, extractors)
            e2e = time_end_to_end(block, extractors, profile.workers, sampler)
            runs.append({"decode_only": decode, "model_only": models, "end_to_end": e2e})
            if repeat == 0:
                decode_seconds += [r.decode_seconds for r in decoded]
                decoded_mb += [
                    sum(v.frames.nbytes for v in r.decoded.values()) / 1e6 for r in decoded
                ]
            del decoded  # before the next repeat decodes the block again
        best = {
            phase: min((r[phase] for r in runs), key=lambda r: r["seconds"]) for phase in runs[0]
        }
        best["repeat_seconds"] = {phase: [r[phase]["seconds"] for r in runs] for phase in runs[0]}
        blocks.append(best)
    phases = ("decode_only", "model_only", "end_to_end")
    out = {phase: _combine([b[phase] for b in blocks], len(paths)) for phase in phases}
    out["decode_only"].update(
        first_video_s=blocks[0]["decode_only"]["first_video_s"],
        decode_job_seconds_sum=sum(decode_seconds),
        decode_job_seconds_median=statistics.median(decode_seconds),
        decoded_mb_per_video=statistics.mean(decoded_mb),
        # What the workers could deliver if moving frames to the main process were free; well
        # above videos_per_s means the transfer (pickling through one pipe), not decoding, binds.
        worker_decode_rate_videos_per_s=max(1, profile.workers) * len(paths) / sum(decode_seconds),
    )
    out["model_only"]["per_extractor"] = _per_extractor(blocks, len(paths))
    if sampler:
        out["end_to_end"]["gpu_utilisation_percent"] = sampler.summary()
    out["blocks"] = [
        {
            **{
                phase: {k: b[phase][k] for k in ("seconds", "cpu_seconds", "load_avg_1min")}
                for phase in phases
            },
            "repeat_seconds": b["repeat_seconds"],
        }
        for b in blocks
    ]
    out["decoded_sample"] = first_decoded
    return out


def _combine(records: list[dict], n_videos: int) -> dict:
    """One phase over every block: times add up, the rate comes from the sums."""
    seconds = sum(r["seconds"] for r in records)
    return {
        "seconds": seconds,
        "cpu_seconds": sum(r["cpu_seconds"] for r in records),
        "videos_per_s": n_videos / seconds,
    }


def _per_extractor(blocks: list[dict], n_videos: int) -> dict:
    out = {}
    for name in blocks[0]["model_only"]["extractor_seconds"]:
        seconds = sum(b["model_only"]["extractor_seconds"][name] for b in blocks)
        frames = sum(b["model_only"]["extractor_frames"][name] for b in blocks)
        out[name] = {
            "seconds": seconds,
            "videos_per_s": n_videos / seconds,
            "frames_per_s": frames / seconds,
            "frames_per_video": frames / n_videos,
        }
    return out


def hidden_share(decode_s: float, models_s: float, e2e_s: float) -> float:
    """The share of the cheaper stage hidden behind the dearer one: 1.0 perfect overlap, 0 none."""
    return (decode_s + models_s - e2e_s) / min(decode_s, models_s)


def efficiency(decode: dict, models: dict, e2e: dict, n_videos: int, cpus: int) -> dict:
    """How much of the cheaper stage hid behind the dearer one, and how close the end-to-end run
    gets to its slower stage running alone."""
    limit = max(decode["seconds"], models["seconds"])
    # When decode and models share the same cores, the run cannot beat their summed CPU work
    # spread over every core, however well it overlaps them.
    cpu_floor = (decode["cpu_seconds"] + models["cpu_seconds"]) / cpus
    return {
        "hidden_share": hidden_share(decode["seconds"], models["seconds"], e2e["seconds"]),
        "hidden_share_ceiling": hidden_share(
            decode["seconds"], models["seconds"], max(limit, cpu_floor)
        ),
        "pipeline_efficiency": limit / e2e["seconds"],
        "decode_only_videos_per_s": n_videos / decode["seconds"],
        "bound_by": "decode" if decode["seconds"] >= models["seconds"] else "models",
        "limit_videos_per_s": n_videos / limit,
        "end_to_end_videos_per_s": n_videos / e2e["seconds"],
        # 1.0 would mean no overlap at all: the run costs decode plus models, one after another.
        "serial_sum_over_end_to_end": (decode["seconds"] + models["seconds"]) / e2e["seconds"],
        "cpu_floor_s": cpu_floor,
        "efficiency_vs_cpu_floor": max(limit, cpu_floor) / e2e["seconds"],
    }


def per_block(blocks: list[dict]) -> list[dict]:
    """Hidden share and efficiency of each block alone: their spread shows how noisy the
    machine was."""
    out = []
    for b in blocks:
        decode, models = b["decode_only"]["seconds"], b["model_only"]["seconds"]
        e2e = b["end_to_end"]["seconds"]
        out.append(
            {
                "hidden_share": hidden_share(decode, models, e2e),
                "pipeline_efficiency": max(decode, models) / e2e,
            }
        )
    return out


# --- GPU ---------------------------------------------------------------------------------------


class Poller:
    """Calls `poll()` every `interval` seconds in a thread while inside `with poller:`."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self):
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        raise NotImplementedError


class GpuSampler(Poller):
    """GPU utilisation sampled every `interval` seconds in a thread (NVML, else nvidia-smi)
    while inside `with sampler:`; samples from every entry add up."""

    def __init__(self, index: int = 0, interval: float = 0.2):
        super().__init__(interval)
        self.index = index
        self.samples: list[float] = []
        self.source = "none"
        self._read = None

    def __enter__(self) -> GpuSampler:
        self._read = self._read or self._reader()
        return super().__enter__()

    def poll(self) -> None:
        value = self._read()
        if value is not None:
            self.samples.append(value)

    def _reader(self):
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)
            self.source = "nvml"
            return lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except ImportError:
            self.source = "nvidia-smi (no pynvml)"
        except Exception as exc:  # noqa: BLE001 - pynvml raises its own NVMLError family
            self.source = f"nvidia-smi (nvml failed: {exc})"
        return self._smi

    def _smi(self) -> float | None:
        cmd = ["nvidia-smi", f"--id={self.index}"]
        cmd += ["--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=True)
            return float(out.stdout.strip().splitlines()[0])
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            return None

    def summary(self) -> dict:
        s = sorted(self.samples)
        if not s:
            return {"samples": 0, "source": self.source}
        return {
            "mean": statistics.mean(s),
            "median": statistics.median(s),
            "p10": s[len(s) // 10],
            "p90": s[(len(s) * 9) // 10],
            "max": s[-1],
            "samples": len(s),
            "interval_s": self.interval,
            "source": self.source,
        }


def gpu_memory_by_batch(decoded: list, profile: Profile, videos: int = 4) -> list[dict]:
    """Peak GPU memory of each backbone alone at each batch size, over a few videos."""
    import torch

    from harmcache.extractors.base import get_extractor

    rows = []
    for batch_size in profile.batch_sizes:
        settings = make_settings(profile, batch_size=batch_size)
        for name in EXTRACTORS:
            extractor = get_extractor(name)(settings)
            sample = [r.decoded[settings.decode_short_side] for r in decoded[:videos]]
            rows.append({"batch_size": batch_size, **_memory_and_speed(extractor, sample)})
            del extractor  # the only reference: its weights leave the device
            gc.collect()
            torch.cuda.empty_cache()
    return rows


def _memory_and_speed(extractor, sample: list) -> dict:
    import torch

    before = torch.cuda.memory_allocated()
    extractor.load()
    torch.cuda.synchronize()
    resident = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    extractor.extract(sample[0])  # warm-up, inside the peak: its allocations are real too
    start = time.perf_counter()
    for video in sample:
        extractor.extract(video)
    seconds = time.perf_counter() - start
    rows_per_video = np.asarray(extractor.frame_indices(sample[0].info)).size
    per_pass = max(1, extractor.settings.batch_size // extractor.rows_cost) * extractor.rows_cost
    peak = torch.cuda.max_memory_allocated()
    return {
        "extractor": extractor.name,
        # Each video is batched alone, so a pass never holds more than one video's frames.
        "frames_per_pass": min(rows_per_video, per_pass),
        "weights_mb": (resident - before) / 2**20,
        "peak_mb": peak / 2**20,
        "peak_above_weights_mb": (peak - resident) / 2**20,
        "left_after_mb": (torch.cuda.memory_allocated() - resident) / 2**20,
        "videos_per_s": len(sample) / seconds,
    }


# --- peak RSS in fresh interpreters ------------------------------------------------------------


def _maxrss_mb(who: int) -> float:
    # Linux reports kilobytes, macOS bytes.
    return resource.getrusage(who).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)


def _reset_peak_rss() -> bool:
    """Restart this process's VmHWM (Linux), so loading the backbones does not hide the
    extraction's own peak. ru_maxrss cannot be restarted: the kernel folds the peak into it
    whenever a thread exits."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _proc_status_mb(pid: int, field: str) -> float | None:
    """A memory line of /proc/PID/status (Linux) in MiB; None where there is none."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _vm_hwm_mb(pid: int) -> float | None:
    """Peak RSS of a live process since its exec, or since its counter was last restarted."""
    return _proc_status_mb(pid, "VmHWM")


def _vm_rss_mb(pid: int) -> float | None:
    return _proc_status_mb(pid, "VmRSS")


class WorkerPeaks(Poller):
    """Polls the peak RSS of this process's decode workers while they live.

    RUSAGE_CHILDREN cannot give it: on Linux a spawned child takes its parent's peak RSS along
    through fork+exec, so every worker reports at least the main process's size at spawn time.
    """

    def __init__(self, interval: float = 0.2):
        super().__init__(interval)
        self.peaks: dict[int, float] = {}

    def poll(self) -> None:
        import psutil

        for child in psutil.Process().children(recursive=True):
            try:
                # Pool workers only; the multiprocessing resource tracker is a child too.
                if not any("spawn_main" in arg for arg in child.cmdline()):
                    continue
            except psutil.Error:
                continue
            peak = _vm_hwm_mb(child.pid)
            if peak is not None:
                self.peaks[child.pid] = max(peak, self.peaks.get(child.pid, 0.0))


def rss_child(spec: dict) -> dict:
    """Runs in a fresh interpreter: load the backbones, extract `spec['videos']`, report peaks."""
    from harmcache.extract.pipeline import build_extractors, run_extraction

    profile = Profile(**{**spec["profile"], "size": tuple(spec["profile"]["size"])})
    extractors = build_extractors(EXTRACTORS, make_settings(profile))
    for ex in extractors:
        ex.load()
    cuda = profile.settings.get("device", "cpu").startswith("cuda")
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    out: dict = {"videos": len(spec["videos"]), "after_load_mb": _vm_rss_mb(os.getpid())}
    out["peak_counter_reset"] = _reset_peak_rss()
    with tempfile.TemporaryDirectory() as tmp, WorkerPeaks() as workers:
        summary = run_extraction(
            spec["videos"], Path(tmp) / "cache", extractors, workers=profile.workers
        )
    extract_peak = _vm_hwm_mb(os.getpid()) if out["peak_counter_reset"] else None
    out.update(
        extracted=summary.count("extracted"),
        seconds=summary.seconds,
        main_peak_mb=_maxrss_mb(resource.RUSAGE_SELF),
        # The main process's peak while extracting, whatever loading the models took before.
        main_extract_peak_mb=extract_peak,
        main_growth_mb=extract_peak - out["after_load_mb"] if extract_peak else None,
        worker_peak_mb=max(workers.peaks.values(), default=None),
        workers_seen=len(workers.peaks),
        # As the kernel reports it; see WorkerPeaks for why it overstates a spawned worker.
        children_ru_maxrss_mb=_maxrss_mb(resource.RUSAGE_CHILDREN),
    )
    if cuda:
        out["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


RSS_KEYS = ("main_peak_mb", "main_extract_peak_mb", "worker_peak_mb", "cuda_max_allocated_mb")


def peak_rss(paths: list[Path], profile: Profile) -> dict:
    """Peak memory of extracting the first 10 and the first 50 clips, each in a new process."""
    runs = {}
    for count in profile.rss_counts:
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "rss.json"
            spec = {
                "profile": dataclasses.asdict(profile),
                "videos": [str(p) for p in paths[:count]],
                "report": str(report),
            }
            subprocess.run(
                [sys.executable, "-m", "bench.extract_bench", "--rss-child", json.dumps(spec)],
                cwd=REPO,
                check=True,
            )
            runs[str(count)] = json.loads(report.read_text())
    small, large = (runs[str(c)] for c in profile.rss_counts)
    ratios = {k: large[k] / small[k] for k in RSS_KEYS if small.get(k) and large.get(k)}
    return {"runs": runs, "ratio_large_over_small": ratios}


# --- the run -----------------------------------------------------------------------------------


def device_label(cuda: bool) -> str:
    """The label in the results file name: cpu, or the CUDA device's name made file-safe."""
    if not cuda:
        return "cpu"
    import torch

    return re.sub(r"[^A-Za-z0-9._-]+", "-", torch.cuda.get_device_name(0)).strip("-")


def environment(profile: Profile, settings) -> dict:
    """What this benchmark ran with; the commit, machine and device are in `meta`."""
    import torch

    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    return {
        "profile": dataclasses.asdict(profile),
        "settings": json.loads(json.dumps(dataclasses.asdict(settings), default=str)),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "libraries": versions,
    }


def run(results_dir: Path, quick: bool = False) -> dict:
    """Measure, write `results_dir/extract-<device>[-quick].json`, and return what was written."""
    import torch

    from harmcache.extract.pipeline import build_extractors

    cuda = torch.cuda.is_available()
    profile = choose_profile(cuda, quick)
    settings = make_settings(profile)
    out: dict = {"meta": run_metadata(), "environment": environment(profile, settings)}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        paths = make_clips(Path(tmp), profile, max(profile.n_videos, *profile.rss_counts))
        out["clip_setup_s"] = time.perf_counter() - start
        main = paths[: profile.n_videos]

        extractors = build_extractors(EXTRACTORS, settings)
        start = time.perf_counter()
        for ex in extractors:
            ex.load()
        out["model_load_s"] = time.perf_counter() - start

        phases = measure_phases(main, settings, extractors, profile)
        decoded = phases.pop("decoded_sample")
        out.update(phases)
        out["efficiency"] = efficiency(
            out["decode_only"], out["model_only"], out["end_to_end"], len(main), os.cpu_count()
        )
        out["efficiency"]["per_block"] = per_block(out["blocks"])
        del extractors  # so the batch sweep sees only its own backbone on the device
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
            out["gpu_memory_by_batch"] = gpu_memory_by_batch(decoded, profile)
        del decoded
        out["peak_rss"] = peak_rss(paths, profile)
    out["summary"] = summarise(out)
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if quick else ""
    target = results_dir / f"extract-{device_label(cuda)}{suffix}.json"
    target.write_text(json.dumps(out, indent=2) + "\n")
    return out


def summarise(out: dict) -> dict:
    """The handful of figures worth a line each, led by the ones that test the overlap claim."""
    per = out["model_only"]["per_extractor"]
    rss = out["peak_rss"]
    eff = out["efficiency"]
    summary = {
        "hidden_share": round(eff["hidden_share"], 3),
        "hidden_share_per_block": [round(b["hidden_share"], 3) for b in eff["per_block"]],
        "hidden_share_ceiling": round(eff["hidden_share_ceiling"], 3),
        "pipeline_efficiency": round(eff["pipeline_efficiency"], 3),
        "efficiency_vs_cpu_floor": round(eff["efficiency_vs_cpu_floor"], 3),
        "bound_by": eff["bound_by"],
        # The physical limit beside them: the decoder's own speed on the same files.
        "decode_only_videos_per_s": round(eff["decode_only_videos_per_s"], 2),
        "end_to_end_videos_per_s": round(eff["end_to_end_videos_per_s"], 2),
        "decode_only_s": round(out["decode_only"]["seconds"], 2),
        "model_only_s": round(out["model_only"]["seconds"], 2),
        "end_to_end_s": round(out["end_to_end"]["seconds"], 2),
        "profile": out["environment"]["profile"]["name"],
        "videos": out["environment"]["profile"]["n_videos"],
        **{f"{name}_videos_per_s": round(p["videos_per_s"], 2) for name, p in per.items()},
        **{f"rss_{k}_ratio": round(v, 3) for k, v in rss["ratio_large_over_small"].items()},
    }
    if "gpu_utilisation_percent" in out["end_to_end"]:
        summary["gpu_util_mean"] = out["end_to_end"]["gpu_utilisation_percent"].get("mean")
    return summary


def quiet_known_warnings() -> None:
    """Silence the import-time deprecation noise of clip and torch.jit (as pyproject does for
    pytest), so that the benchmark's own output stays readable."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")


if __name__ == "__main__":
    quiet_known_warnings()
    if len(sys.argv) == 3 and sys.argv[1] == "--rss-child":
        child_spec = json.loads(sys.argv[2])
        Path(child_spec["report"]).write_text(json.dumps(rss_child(child_spec)))
    else:
        print(json.dumps(run(REPO / "bench" / "results", quick="--quick" in sys.argv)["summary"]))
