"""Training runs: labels + cache → a self-contained run directory; and loading one back.

    RUN/config.json        the resolved configuration (head settings included)
    RUN/split.csv          video_id,path,label,split (train | val | test), one row per labelled path
    RUN/features.json      per extractor: family, fingerprint, random_init, dim and the full spec
    RUN/head/              head.json (kind, config, learned facts) + the head's weights
    RUN/val_scores.csv     video_id,path,label,score: one row per validation video
    RUN/metrics.json       validation metrics at the stored threshold, data counts, history
    RUN/threshold.json     the decision threshold and how it was chosen (see threshold.py)
    RUN/threshold.png      written by `sweep-threshold`

Nothing here opens a video: every later command needs only the run directory and the cache.
The directory is written as RUN.incomplete and renamed when complete.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

import harmcache
from harmcache import metrics
from harmcache.errors import CacheError, DataError, UsageError
from harmcache.heads.base import EpochCallback, Head, load_head, make_head
from harmcache.heads.data import SequenceData
from harmcache.store.atomic import write_text_atomic
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.train.features import (
    check_features,
    constant_modalities,
    load_sequences,
    select_families,
)
from harmcache.train.labels import JoinReport, LabeledVideo, check_classes, join_labels, read_labels
from harmcache.train.split import (
    SPLIT_FILE,
    check_split,
    read_split,
    split_from_labels,
    split_from_run,
    stratified_split,
    write_split,
)
from harmcache.train.threshold import DEFAULT_GRID, SweepResult, sweep

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
FEATURES_FILE = "features.json"
HEAD_DIR = "head"
VAL_SCORES_FILE = "val_scores.csv"
METRICS_FILE = "metrics.json"
THRESHOLD_FILE = "threshold.json"
PLOT_FILE = "threshold.png"


@dataclass
class RunResult:
    """What `train` did."""

    run_dir: Path
    join: JoinReport
    families: dict[str, Family]
    counts: dict[str, dict[str, int]]
    """split → {"videos", "harmful"}"""
    metrics: dict
    threshold: dict
    seconds: dict[str, float] = field(default_factory=dict)


def train(
    cache_dir: str | Path,
    labels: str | Path,
    head: str,
    out: str | Path,
    *,
    features: list[str] | None = None,
    families: list[str] | None = None,
    positive: list[str] | None = None,
    split_from: str | Path | None = None,
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    head_params: dict[str, Any] | None = None,
    force: bool = False,
    on_join: Callable[[JoinReport], None] | None = None,
    on_epoch: EpochCallback | None = None,
) -> RunResult:
    """Join labels to the cache, split, fit a head, and write the run directory `out`."""
    out = Path(out)
    _check_out(out, force)
    started = time.perf_counter()
    cache = FeatureCache(cache_dir)
    videos, report, chosen = _join(cache, labels, positive, features, families)
    (on_join or _log_join)(report)
    check_classes(videos)
    assignment, split_source = _assign_split(videos, split_from, seed, val_fraction, test_fraction)
    check_split(videos, assignment)
    parts = {
        name: [v for v in videos if assignment[v.video_id] == name]
        for name in ("train", "val", "test")
    }

    # The test split stays on disk until `evaluate` asks for it.
    loading = time.perf_counter()
    train_data, val_data = (_load_part(cache, chosen, parts[name]) for name in ("train", "val"))
    if features is None:
        chosen = _leave_out_constant(chosen, train_data, val_data, report)
    for part in (train_data, val_data):
        check_features(part)
    timer = {"load": time.perf_counter() - loading}
    model = make_head(head, **{"seed": seed, **(head_params or {})})
    fitting = time.perf_counter()
    model.fit(train_data, val_data, on_epoch=on_epoch)
    timer["fit"] = time.perf_counter() - fitting
    scores = model.predict_proba(val_data)
    choice = sweep(val_data.labels, scores, "f1", DEFAULT_GRID)
    timer["total"] = time.perf_counter() - started

    counts = {
        name: {"videos": len(part), "harmful": int(sum(v.label for v in part))}
        for name, part in parts.items()
    }
    config = {
        "harmcache_version": harmcache.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cache": str(Path(cache_dir).resolve()),
        "labels": str(Path(labels).resolve()),
        "head": head,
        "head_params": model.get_params(),
        "features": sorted(chosen),
        "families": families,
        "positive": positive,
        "seed": seed,
        "split": {
            "source": split_source,
            "val_fraction": val_fraction,
            "test_fraction": test_fraction,
        },
    }
    run_metrics = {
        "val": metrics.summary(val_data.labels, scores, choice.threshold),
        "counts": counts,
        "join": report.to_json(),
        "history": getattr(model, "history_", []),
        "best_epoch": getattr(model, "best_epoch_", None),
        "seconds": timer,
    }
    threshold = _threshold_json(choice)
    with _incomplete(out) as tmp:
        _write_json(tmp / CONFIG_FILE, config)
        write_split(tmp / SPLIT_FILE, videos, assignment)
        _write_json(tmp / FEATURES_FILE, features_json(chosen, train_data.dims))
        model.save(tmp / HEAD_DIR)
        _write_val_scores(tmp / VAL_SCORES_FILE, parts["val"], scores)
        _write_json(tmp / METRICS_FILE, run_metrics)
        _write_json(tmp / THRESHOLD_FILE, threshold)
    return RunResult(out, report, chosen, counts, run_metrics, threshold, timer)


def _join(
    cache: FeatureCache,
    labels: str | Path,
    positive: list[str] | None,
    features: list[str] | None,
    families: list[str] | None,
) -> tuple[list[LabeledVideo], JoinReport, dict[str, Family]]:
    """Labelled videos that have features from every chosen family, the join report, and the
    families."""
    videos, report = join_labels(read_labels(labels, positive), cache)
    chosen = select_families(cache, [v.video_id for v in videos], features, families)
    return _drop_incomplete(cache, chosen, videos, report), report, chosen


def _log_join(report: JoinReport) -> None:
    for line in report.lines():
        log.info("%s", line)


def _load_part(
    cache: FeatureCache, families: dict[str, Family], videos: list[LabeledVideo]
) -> SequenceData:
    labels = np.array([v.label for v in videos], dtype=np.int64)
    return load_sequences(cache, families, [v.video_id for v in videos], labels)


def _leave_out_constant(
    chosen: dict[str, Family], train: SequenceData, val: SequenceData, report: JoinReport
) -> dict[str, Family]:
    """With the default feature set, leave out a modality identical in every training video
    (random-init YOLO that detects nothing) as long as another remains; `check_features`
    refuses it when it was asked for, or when nothing else is left."""
    constant = constant_modalities(train)
    if not constant or len(constant) == len(chosen):
        return chosen
    for extractor, why in constant.items():
        log.warning("left %s features out: %s", extractor, why)
        report.left_out[extractor] = why
        del train.modalities[extractor], val.modalities[extractor]
    return {ex: fam for ex, fam in chosen.items() if ex not in constant}


@contextmanager
def _incomplete(out: Path) -> Iterator[Path]:
    """Write into OUT.incomplete; replace OUT with it only when everything is written."""
    tmp = out.with_name(out.name + ".incomplete")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    yield tmp
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise UsageError(
            f"{out} already exists; choose another --out or pass --force to replace it"
        )


def _drop_incomplete(
    cache: FeatureCache, chosen: dict[str, Family], videos: list[LabeledVideo], report: JoinReport
) -> list[LabeledVideo]:
    """Keep the videos every chosen family holds; count the others per missing extractor."""
    keep = []
    committed = {ex: cache.committed(fam) for ex, fam in chosen.items()}
    for v in videos:
        lacking = [ex for ex, ids in committed.items() if v.video_id not in ids]
        for ex in lacking:
            report.missing_features[ex] = report.missing_features.get(ex, 0) + 1
        if not lacking:
            keep.append(v)
    if not keep:
        raise DataError(
            "no labelled video has features from every chosen family ("
            + ", ".join(f.name for f in chosen.values())
            + "); pick fewer --features"
        )
    return keep


def _assign_split(
    videos: list[LabeledVideo],
    split_from: str | Path | None,
    seed: int,
    val_fraction: float,
    test_fraction: float,
) -> tuple[dict[str, str], str]:
    from_labels = split_from_labels(videos)
    if from_labels is not None:
        if split_from is not None:
            raise UsageError("the labels file has a split column; drop it or drop --split-from")
        return from_labels, "labels"
    if split_from is not None:
        return split_from_run(split_from, videos), f"run:{Path(split_from).resolve()}"
    return (
        stratified_split(videos, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed),
        "stratified",
    )


def features_json(families: dict[str, Family], dims: dict[str, int]) -> dict:
    """Enough to find (or re-extract) the same features: each family's full spec."""
    return {
        ex: {
            "family": fam.name,
            "fingerprint": fam.fingerprint,
            "random_init": fam.random_init,
            "dim": int(dims.get(ex, 0)),
            "spec": fam.spec,
        }
        for ex, fam in sorted(families.items())
    }


def _threshold_json(result: SweepResult, plot: str | None = None) -> dict:
    out = result.to_json()
    out["source"] = VAL_SCORES_FILE
    out["plot"] = plot
    return out


def _write_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(plain(obj), indent=2, sort_keys=True) + "\n")


def plain(obj: Any) -> Any:
    """JSON-safe: NaN and inf become null (AUROC is undefined on one class), arrays lists."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def _write_val_scores(path: Path, videos: list[LabeledVideo], scores: np.ndarray) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["video_id", "path", "label", "score"])
        for v, s in zip(videos, scores):
            writer.writerow([v.video_id, v.paths[0], v.label, repr(float(s))])


# --- reading a run back ----------------------------------------------------------------------
@dataclass
class Run:
    """A run directory, loaded: its head scores cached features the way training did."""

    path: Path
    config: dict
    features: dict
    head: Head
    threshold: dict

    @property
    def families(self) -> dict[str, Family]:
        return {
            ex: Family(ex, f["fingerprint"], f["spec"]) for ex, f in sorted(self.features.items())
        }

    def split(self) -> list[dict]:
        return read_split(self.path / SPLIT_FILE)

    def val_scores(self) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
        """(video ids, paths, labels, scores) as written at training time."""
        return read_val_scores(self.path / VAL_SCORES_FILE)

    def open_cache(self, cache_dir: str | Path | None = None) -> FeatureCache:
        return FeatureCache(cache_dir or self.config["cache"])

    def missing(self, cache: FeatureCache, video_ids: list[str]) -> dict[str, list[str]]:
        """extractor → the videos lacking this run's features in `cache`."""
        known = {f.name for f in cache.families()}
        out = {}
        for ex, fam in self.families.items():
            have = cache.committed(fam) if fam.name in known else set()
            lacking = [v for v in video_ids if v not in have]
            if lacking:
                out[ex] = lacking
        return out

    def load_data(
        self, cache: FeatureCache, video_ids: list[str], labels: np.ndarray | None = None
    ) -> SequenceData:
        """The run's features of `video_ids`; a CacheError names what is missing."""
        missing = self.missing(cache, video_ids)
        if missing:
            ex, lacking = next(iter(missing.items()))
            fam = self.families[ex]
            raise CacheError(
                f"{len(lacking)} video(s) have no {ex} features with this run's fingerprint "
                f"(family {fam.name}) in {cache.root}, e.g. {lacking[0][:12]}; extract them with "
                "the run's specs (`harmcache predict` does) or point --cache at the run's cache"
            )
        return load_sequences(cache, self.families, video_ids, labels)

    def score(self, data: SequenceData) -> np.ndarray:
        """(N,) probability of harmful for each video."""
        return self.head.predict_proba(data)

    def score_cache(self, cache: FeatureCache, video_ids: list[str]) -> np.ndarray:
        return self.score(self.load_data(cache, video_ids))


def load_run(run_dir: str | Path) -> Run:
    """Load a run directory written by `train`."""
    path = Path(run_dir)
    for name in (CONFIG_FILE, FEATURES_FILE, THRESHOLD_FILE, VAL_SCORES_FILE):
        if not (path / name).exists():
            raise UsageError(f"{path} is not a run directory: {name} is missing")
    config = json.loads((path / CONFIG_FILE).read_text())
    features = json.loads((path / FEATURES_FILE).read_text())
    threshold = json.loads((path / THRESHOLD_FILE).read_text())
    return Run(path, config, features, load_head(path / HEAD_DIR), threshold)


def read_val_scores(path: Path) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return (
        [r["video_id"] for r in rows],
        [r["path"] for r in rows],
        np.array([int(r["label"]) for r in rows], dtype=np.int64),
        np.array([float(r["score"]) for r in rows], dtype=np.float64),
    )


def sweep_run(
    run_dir: str | Path,
    objective: str = "f1",
    grid: str = DEFAULT_GRID,
    *,
    bootstrap: int = 0,
    seed: int = 0,
    review_band: tuple[float, float] | None = None,
    plot: bool = True,
) -> SweepResult:
    """Sweep the run's validation scores; rewrite threshold.json (and the validation metrics in
    metrics.json) and draw threshold.png."""
    from harmcache.train import threshold as th

    path = Path(run_dir)
    if not (path / VAL_SCORES_FILE).exists():
        raise UsageError(f"{path} is not a run directory: {VAL_SCORES_FILE} is missing")
    _, _, y, scores = read_val_scores(path / VAL_SCORES_FILE)
    result = sweep(
        y, scores, objective, grid, bootstrap=bootstrap, seed=seed, review_band=review_band
    )
    picture = None
    if plot:
        th.plot(result, y, scores, path / PLOT_FILE)
        picture = PLOT_FILE
    _write_json(path / THRESHOLD_FILE, _threshold_json(result, picture))
    metrics_path = path / METRICS_FILE
    if metrics_path.exists():
        data = json.loads(metrics_path.read_text())
        data["val"] = metrics.summary(y, scores, result.threshold)
        _write_json(metrics_path, data)
    return result
