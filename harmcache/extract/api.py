"""`harmcache.extract`: stage one in one call, exactly what `harmcache extract` does."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from harmcache.errors import UsageError
from harmcache.extract.config import ExtractConfig, resolve_device
from harmcache.extract.pipeline import build_extractors, run_extraction
from harmcache.extract.progress import Progress
from harmcache.extract.summary import ExtractSummary


def extract(
    inputs: Sequence[str | Path],
    out: str | Path,
    config: ExtractConfig | None = None,
    *,
    progress: Progress | None = None,
    **options: Any,
) -> ExtractSummary:
    """Decode each video once and cache the chosen backbones' features in `out`.

    The options are `ExtractConfig`'s fields, given as a config, as keywords, or both (the
    keywords win): e.g. `extract(videos, "cache", random_init=True, frames=8)`. Frames:
    `frames` (default 32) spread uniformly over each video, or `fps` frames per second of it;
    SlowFast windows: `windows` (default 4) per video, or one every `window_every` seconds.
    Each pair excludes each other.

    Inputs are video files, folders (searched recursively) and .csv/.txt lists of paths. Every
    input is accounted for in the returned summary: extracted, cached, or failed with a reason
    (also in the cache's failure ledger). Bad options raise `UsageError`, missing weights
    `WeightsUnavailable`; a damaged video never raises.
    """
    config = replace(config, **options) if config is not None else ExtractConfig(**options)
    device = resolve_device(config.device, config.engine)
    chosen = build_extractors(config.extractors, config.settings(device))
    check_writable_folder(Path(out))
    return run_extraction(
        list(inputs),
        out,
        chosen,
        workers=config.workers,
        shard_size=config.shard_size,
        engine=config.engine,
        ray_address=config.ray_address,
        gpus_per_worker=config.gpus(device),
        progress=progress,
    )


def check_writable_folder(out: Path) -> None:
    """Refuse an --out that is a file or cannot be written, before any model is loaded."""
    probe = out
    while not probe.exists():
        probe = probe.parent
    if probe.is_file() or (probe == out and not out.is_dir()):
        raise UsageError(f"{{param}} {out} is not a folder", parameter="out")
    if not os.access(probe, os.W_OK):
        raise UsageError(f"{{param}} {out} is not writable", parameter="out")
