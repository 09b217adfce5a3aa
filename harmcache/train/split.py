"""Train/val/test splits: stratified by label, grouped by video id, seeded, saved in the run.

A video id is the hash of the bytes, so duplicate files are one `LabeledVideo` and can never
straddle the split. Every head trained with `--split-from` uses the same split.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np

from harmcache.errors import DataError, UsageError
from harmcache.train.labels import SPLIT_VALUES, LabeledVideo

SPLIT_FILE = "split.csv"


def stratified_split(
    videos: list[LabeledVideo],
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, str]:
    """video id → train | val | test. Within each class the ids (sorted, so the input order
    does not matter) are shuffled with `seed`; each held-out part gets at least one video of a
    class that has two or more."""
    if not 0 < val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise UsageError(
            f"--val-fraction ({val_fraction}) and --test-fraction ({test_fraction}) must be in "
            "[0, 1) with val > 0 and a sum below 1"
        )
    rng = np.random.default_rng(seed)
    out: dict[str, str] = {}
    for label in (0, 1):
        ids = sorted(v.video_id for v in videos if v.label == label)
        ids = [ids[i] for i in rng.permutation(len(ids))]
        n_val = _share(len(ids), val_fraction)
        n_test = (
            _share(len(ids) - n_val, test_fraction / (1 - val_fraction)) if test_fraction else 0
        )
        for i, vid in enumerate(ids):
            out[vid] = "val" if i < n_val else "test" if i < n_val + n_test else "train"
    return out


def _share(n: int, fraction: float) -> int:
    if n < 2:
        return 0
    return int(min(max(round(n * fraction), 1), n - 1))


def split_from_labels(videos: list[LabeledVideo]) -> dict[str, str] | None:
    """The split written in the labels file's `split` column, if it has one."""
    if all(v.split is None for v in videos):
        return None
    return {v.video_id: v.split for v in videos if v.split is not None}


def split_from_run(run_dir: str | Path, videos: list[LabeledVideo]) -> dict[str, str]:
    """Another run's split for these videos. Every video must be in it."""
    path = Path(run_dir) / SPLIT_FILE
    if not path.exists():
        raise UsageError(f"--split-from {run_dir}: no {SPLIT_FILE} there")
    assigned = {row["video_id"]: row["split"] for row in read_split(path)}
    missing = [v.video_id for v in videos if v.video_id not in assigned]
    if missing:
        raise DataError(
            f"--split-from {run_dir}: {len(missing)} of the labelled videos are not in its split "
            f"(e.g. {missing[0][:12]}); train without --split-from, or use the same labels"
        )
    return {v.video_id: assigned[v.video_id] for v in videos}


def check_split(videos: list[LabeledVideo], assignment: dict[str, str]) -> None:
    """Training and validation each need both classes."""
    for part in ("train", "val"):
        counts = Counter(v.label for v in videos if assignment.get(v.video_id) == part)
        if len(counts) < 2:
            have = ", ".join(f"{n} labelled {k}" for k, n in sorted(counts.items())) or "no videos"
            raise DataError(
                f"the {part} split needs both classes but has {have}; add labelled videos or "
                "change the split"
            )


def write_split(path: Path, videos: list[LabeledVideo], assignment: dict[str, str]) -> None:
    """One row per labelled path: video_id,path,label,split."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["video_id", "path", "label", "split"])
        for v in videos:
            for p in v.paths:
                writer.writerow([v.video_id, p, v.label, assignment[v.video_id]])


def read_split(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row.get("split") not in SPLIT_VALUES:
            raise DataError(f"{path}: bad split value {row.get('split')!r}")
        row["label"] = int(row["label"])
    return rows
