"""Synthetic feature caches with a planted signal, built through FeatureCache.commit.

Harmful videos get `signal` added to the first two feature dimensions of some of their rows, so
any working head separates the classes; nothing here decodes a video.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harmcache.extractors.base import FeatureRecord
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.types import VideoFeatures, VideoInfo

SMALL_DIMS = {"clip": 16, "yolo": 8, "slowfast": 24}
FULL_DIMS = {"clip": 512, "yolo": 160, "slowfast": 2304}


def spec(extractor: str, *, random_init: bool = True, seed: int = 0, frames: int = 8) -> dict:
    weights = (
        {"kind": "random-init", "seed": seed}
        if random_init
        else {
            "kind": "file",
            "name": f"{extractor}.pt",
            "sha256": hashlib.sha256(extractor.encode()).hexdigest(),
        }
    )
    return {
        "extractor": extractor,
        "version": "1",
        "weights": weights,
        "options": {"frames": frames},
    }


def video_id(tag: str) -> str:
    return hashlib.sha256(tag.encode()).hexdigest()


@dataclass
class Synthetic:
    cache: FeatureCache
    labels_csv: Path
    ids: list[str]
    paths: list[str]
    labels: list[int]
    families: dict[str, Family] = field(default_factory=dict)
    targets: np.ndarray | None = None
    """(n, categories) 0/1 truth, when built with `categories`"""


def make_record(
    rng: np.random.Generator,
    label: int | tuple[int, ...],
    rows: int,
    dim: int,
    duration: float,
    signal: float,
) -> FeatureRecord:
    """A video's rows; a positive carries the signal in dims 0-1, or, for a tuple of
    category labels, category k's signal in dims 2k and 2k+1."""
    features = rng.normal(size=(rows, dim)).astype(np.float32)
    planted = [k for k, y in enumerate(label) if y == 1] if isinstance(label, tuple) else [0]
    if (label if not isinstance(label, tuple) else planted) and rows:
        # The signal sits in some rows only, so a time-aware head has something to localise.
        hot = rng.random(rows) < 0.75
        hot[rng.integers(rows)] = True
        for k in planted:
            features[hot, 2 * k : 2 * k + 2] += signal
    stamps = (np.arange(rows) + 0.5) * duration / max(rows, 1)
    fps = 25.0
    return FeatureRecord(features, np.round(stamps * fps).astype(np.int64), stamps)


def build(
    root: Path,
    n: int = 60,
    *,
    seed: int = 0,
    prevalence: float = 0.4,
    dims: dict[str, int] | None = None,
    frames: int = 8,
    windows: int = 2,
    signal: float = 2.0,
    random_init: bool | dict[str, bool] = True,
    variable_length: bool = False,
    empty: dict[str, list[int]] | None = None,
    zero: tuple[str, ...] = (),
    tag: str = "v",
    shard_size: int = 25,
    categories: dict[str, float] | None = None,
) -> Synthetic:
    """A cache at root/cache with n videos, their paths under root/videos, and labels.csv.
    `categories` (name → prevalence, drawn independently) plants one signal per category and
    writes labels.csv as path,<category>,...; `Synthetic.targets` holds the truth."""
    dims = dims or SMALL_DIMS
    rng = np.random.default_rng(seed)
    cache = FeatureCache(root / "cache", create=True)
    videos = root / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    n_pos = max(1, round(n * prevalence))
    labels = [1] * n_pos + [0] * (n - n_pos)
    targets = None
    if categories:
        draw = np.random.default_rng(seed + 1)
        targets = np.stack([(draw.random(n) < p).astype(int) for p in categories.values()], axis=1)
        labels = [int(row.any()) for row in targets]
    ids = [video_id(f"{tag}-{seed}-{i}") for i in range(n)]
    paths = [str((videos / f"{tag}{i:04d}.mp4").resolve()) for i in range(n)]
    durations = rng.uniform(4.0, 12.0, size=n)
    cache.record_sources(list(zip(paths, ids)))
    families = {}
    for extractor, dim in dims.items():
        fake = random_init.get(extractor, True) if isinstance(random_init, dict) else random_init
        family = Family.from_spec(spec(extractor, random_init=fake, frames=frames))
        families[extractor] = family
        per_window = extractor == "slowfast"
        items = []
        for i in range(n):
            rows = windows if per_window else frames
            if variable_length:
                rows = int(rng.integers(1, rows + 1))
            if empty and i in empty.get(extractor, []):
                rows = 0
            label = labels[i] if targets is None else tuple(int(y) for y in targets[i])
            record = make_record(rng, label, rows, dim, durations[i], signal)
            if extractor in zero:
                record.features[:] = 0
            info = VideoInfo(int(durations[i] * 25), 25.0, float(durations[i]), 64, 32, "synthetic")
            items.append(VideoFeatures(ids[i], info, paths[i], record))
        for start in range(0, n, shard_size):
            cache.commit(family, items[start : start + shard_size])
    labels_csv = root / "labels.csv"
    with open(labels_csv, "w", newline="") as f:
        writer = csv.writer(f)
        if targets is None:
            writer.writerow(["path", "label"])
            writer.writerows(zip(paths, labels))
        else:
            writer.writerow(["path", *categories])
            writer.writerows([p, *row] for p, row in zip(paths, targets.tolist()))
    return Synthetic(cache, labels_csv, ids, paths, labels, families, targets)
