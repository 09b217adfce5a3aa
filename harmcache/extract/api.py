"""`harmcache.extract`: stage one in one call, exactly what `harmcache extract` does."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from harmcache.errors import UsageError
from harmcache.extract.pipeline import DEFAULT_EXTRACTORS, build_extractors, run_extraction
from harmcache.extract.progress import Progress
from harmcache.extract.summary import ExtractSummary
from harmcache.extractors.base import (
    DEFAULT_FRAMES,
    DEFAULT_WINDOWS,
    FRAMES_AND_FPS,
    WINDOWS_AND_EVERY,
    ExtractSettings,
    WeightsSource,
)


def extract(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    extractors: Sequence[str] = DEFAULT_EXTRACTORS,
    frames: int | None = None,
    windows: int | None = None,
    fps: float | None = None,
    window_every: float | None = None,
    device: str = "auto",
    batch_size: int = 16,
    workers: int = 1,
    shard_size: int = 8,
    weights_dir: str | Path | None = None,
    random_init: bool = False,
    seed: int = 0,
    tta: str | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    gpus_per_worker: float | None = None,
    decode_short_side: int = 360,
    yolo_imgsz: int = 640,
    slowfast_crop: int = 256,
    slowfast_short_side: int = 256,
    progress: Progress | None = None,
) -> ExtractSummary:
    """Decode each video once and cache the chosen backbones' features in `out`.

    Frames: `frames` (default 32) spread uniformly over each video, or `fps` frames per second
    of it; SlowFast windows: `windows` (default 4) per video, or one every `window_every`
    seconds. Each pair excludes each other.

    Inputs are video files, folders (searched recursively) and .csv/.txt lists of paths. Every
    input is accounted for in the returned summary: extracted, cached, or failed with a reason
    (also in the cache's failure ledger). Bad flags raise `UsageError`, missing weights
    `WeightsUnavailable`; a damaged video never raises.
    """
    if weights_dir is not None and random_init:
        raise UsageError("--weights-dir and --random-init exclude each other")
    if frames is not None and fps is not None:
        raise UsageError(FRAMES_AND_FPS)
    if windows is not None and window_every is not None:
        raise UsageError(WINDOWS_AND_EVERY)
    resolved = resolve_device(device, engine)
    settings = ExtractSettings(
        frames=DEFAULT_FRAMES if frames is None else frames,
        windows=DEFAULT_WINDOWS if windows is None else windows,
        fps=fps,
        window_every=window_every,
        batch_size=batch_size,
        device=resolved,
        tta=tta,
        weights=WeightsSource(
            random_init=random_init,
            seed=seed,
            weights_dir=Path(weights_dir) if weights_dir is not None else None,
        ),
        decode_short_side=decode_short_side,
        yolo_imgsz=yolo_imgsz,
        slowfast_crop=slowfast_crop,
        slowfast_short_side=slowfast_short_side,
        cpu_threads=_cpu_threads(resolved),
    )
    chosen = build_extractors(list(extractors), settings)
    check_writable_folder(Path(out))
    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if resolved.startswith("cuda") else 0.0
    return run_extraction(
        list(inputs),
        out,
        chosen,
        workers=workers,
        shard_size=shard_size,
        engine=engine,
        ray_address=ray_address,
        gpus_per_worker=gpus_per_worker,
        progress=progress,
    )


def resolve_device(device: str, engine: str = "local") -> str:
    """The torch device to extract on. With Ray the GPUs are on the workers, not the driver."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if engine == "local" and not torch.cuda.is_available():
            raise UsageError(f"--device {device} asked for, but CUDA is not available here")
        return device
    if device != "cpu":
        raise UsageError(f"--device must be auto, cpu or cuda[:N], got {device!r}")
    return device


def check_writable_folder(out: Path) -> None:
    """Refuse an --out that is a file or cannot be written, before any model is loaded."""
    probe = out
    while not probe.exists():
        probe = probe.parent
    if probe.is_file() or (probe == out and not out.is_dir()):
        raise UsageError(f"--out {out} is not a folder")
    if not os.access(probe, os.W_OK):
        raise UsageError(f"--out {out} is not writable")


def _cpu_threads(device: str) -> int:
    """This process's torch thread count, fixed for the run so that Ray actors (which start
    with one thread) compute the same numbers as a local run."""
    if device != "cpu":
        return 0
    import torch

    return torch.get_num_threads()
