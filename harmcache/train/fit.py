"""Training: labels + cache → a fitted head in a self-contained run directory.

`train` is a short sequence of named steps: join the labels to the cache, split
(`harmcache.train.split`: hash-assigned, stratified, grouped; or reused), load the features
(`harmcache.train.inputs`), fit the head with early stopping on validation, fit the score
calibrator and pick the best-F1 threshold on the validation scores, score the test split once,
for the record, localize against an events file when given one, and write the run directory
(`harmcache.train.rundir`). Nothing is chosen on the test split: its numbers are the honest
ones, the validation numbers are "tuned on".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

import harmcache
from harmcache import metrics
from harmcache.calibration import ScoreCalibrator, brier_score, expected_calibration_error
from harmcache.decisions.grid import DEFAULT_GRID
from harmcache.decisions.sweep import sweep
from harmcache.heads.base import EpochCallback, Head, make_head
from harmcache.store.cache import FeatureCache
from harmcache.train.config import TrainConfig
from harmcache.train.inputs import Inputs, Joined, join_videos, small_shards
from harmcache.train.labels import JoinReport, check_classes
from harmcache.train.localize import (
    Events,
    head_timelines,
    join_events,
    localization,
    timeline_kind,
    with_localization,
)
from harmcache.train.result import RunResult
from harmcache.train.rundir import (
    CALIBRATION_FILE,
    CONFIG_FILE,
    FEATURES_FILE,
    HEAD_DIR,
    METRICS_FILE,
    TEST_SCORES_FILE,
    THRESHOLD_FILE,
    VAL_SCORES_FILE,
    check_out,
    features_json,
    incomplete,
    threshold_json,
    write_json,
    write_val_scores,
)
from harmcache.train.split import Split

log = logging.getLogger(__name__)


def train(
    cache_dir: str | Path,
    labels: str | Path,
    head: str | TrainConfig,
    out: str | Path,
    *,
    on_join: Callable[[JoinReport], None] | None = None,
    on_epoch: EpochCallback | None = None,
    **options: Any,
) -> RunResult:
    """Join labels to the cache, split, fit a head, and write the run directory `out`.

    `head` is a head name (transformer, lightgbm, logreg, mil) with the settings as keywords,
    any field of `TrainConfig`: `features`, `families`, `positive`, `split_from`, `seed`,
    `val_fraction`, `test_fraction`, `calibrate` (isotonic, sigmoid or none: the map from raw
    scores to probabilities, fitted on the validation scores), `head_params`, `epochs`,
    `batch_size`, `loss`, `events` (an events CSV: the run's metrics then hold per-second
    segment AUROC/AP of the validation and test timelines), `force`. Or `head` is a whole
    `TrainConfig`. `on_join` receives the join report, `on_epoch` each epoch's (default: both
    logged)."""
    if isinstance(head, TrainConfig) and options:
        raise TypeError("train() takes a TrainConfig or keyword settings, not both")
    config = head if isinstance(head, TrainConfig) else TrainConfig(head=head, **options)
    out = Path(out)
    check_out(out, config.force)
    settings = config.head_settings()  # a bad setting fails before any data is read
    started = time.perf_counter()
    cache = FeatureCache(cache_dir)

    # Join the labels to the cache (and the events, if any), then split.
    joined = join_videos(cache, labels, config.positive, config.features, config.families)
    timer = {"join": time.perf_counter() - started}
    (on_join or _log_join)(joined.report)
    events = None if config.events is None else join_events(config.events, cache)
    check_classes(joined.videos)
    split = Split.make(
        joined.videos,
        split_from=config.split_from,
        seed=config.seed,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
    )
    notes = split.notes + small_shards(cache, joined.families)

    # Load the features and fit the head, stopping early on validation.
    model = make_head(config.head, **settings)
    loading = time.perf_counter()
    inputs = Inputs.load(cache, joined, split, model, leave_out=config.features is None)
    timer["load"] = time.perf_counter() - loading
    if events is not None:
        on_epoch = with_localization(model, on_epoch, events.by_video, inputs.sequences("val"))
    fitting = time.perf_counter()
    inputs.fit_head(on_epoch)
    timer["fit"] = time.perf_counter() - fitting

    # Tune the threshold and calibrate on validation; score the test split once; localize.
    scores = {"val": inputs.scores("val")}
    scores["test"] = inputs.scores("test") if inputs.ids["test"] else None
    choice = sweep(inputs.y["val"], scores["val"], "f1", DEFAULT_GRID)
    calibrator = _fit_calibrator(config.calibrate, scores["val"], inputs.y["val"])
    localized = None if events is None else _localize(model, events, inputs)
    notes += [] if events is None else events.notes()
    timer["total"] = time.perf_counter() - started

    # Write the run directory.
    run_metrics = _run_metrics(model, inputs, joined.report, choice.threshold, calibrator, scores)
    run_metrics["seconds"] = timer
    if localized is not None:
        run_metrics["localization"] = localized
    threshold = threshold_json(choice)
    record = _run_config(cache_dir, labels, config, model, inputs, split)
    with incomplete(out) as tmp:
        _write_run(tmp, record, joined, split, inputs, scores, calibrator)
        write_json(tmp / METRICS_FILE, run_metrics)
        write_json(tmp / THRESHOLD_FILE, threshold)
    return RunResult(
        out, joined.report, inputs.families, run_metrics["counts"], run_metrics, threshold,
        timer, notes, head=config.head,
    )  # fmt: skip


def _log_join(report: JoinReport) -> None:
    for line in report.lines():
        log.info("%s", line)


def _fit_calibrator(method: str, scores: np.ndarray, y: np.ndarray) -> ScoreCalibrator | None:
    """The score → probability map, fitted on the validation scores (None for "none")."""
    return None if method == "none" else ScoreCalibrator(method).fit(scores, y)


def _localize(model: Head, events: Events, inputs: Inputs) -> dict:
    """Per-second localization of the validation and test timelines against the events."""
    out: dict[str, Any] = {}
    for name in ("val", "test"):
        if inputs.ids[name]:
            part = inputs.sequences(name)
            timelines = head_timelines(model, part)
            out[name] = {
                **localization(events.by_video, timelines, part),
                "timeline": timeline_kind(model),
            }
    out["events"] = str(events.source.resolve())
    return out


def _run_metrics(
    model: Head,
    inputs: Inputs,
    report: JoinReport,
    threshold: float,
    calibrator: ScoreCalibrator | None,
    scores: dict[str, np.ndarray | None],
) -> dict:
    """metrics.json: test (None without a test split), then validation ("tuned on"), with
    calibration, the counts, the join and the training history."""
    y, test = inputs.y, scores["test"]
    return {
        "test": None if test is None else metrics.summary(y["test"], test, threshold),
        "val": metrics.summary(y["val"], scores["val"], threshold),
        "calibration": _calibration_report(calibrator, y["val"], scores["val"], y["test"], test),
        "counts": {
            name: {"videos": len(part), "harmful": int(sum(v.label for v in part))}
            for name, part in inputs.videos.items()
        },
        "join": report.to_json(),
        "history": getattr(model, "history_", []),
        "best_epoch": getattr(model, "best_epoch_", None),
    }


def _calibration_report(
    calibrator: ScoreCalibrator | None,
    y_val: np.ndarray,
    val_scores: np.ndarray,
    y_test: np.ndarray,
    test_scores: np.ndarray | None,
) -> dict:
    """Brier score and ECE of the raw and the calibrated scores, on the test split (the honest
    figure) and on validation (where the calibrator was fitted: optimistic)."""
    out: dict[str, Any] = {"method": calibrator.method if calibrator else "none"}
    sets = {"val": (y_val, val_scores)}
    if test_scores is not None:
        sets["test"] = (y_test, test_scores)
    for name, (y, s) in sets.items():
        row = {"brier_raw": brier_score(y, s), "ece_raw": expected_calibration_error(y, s)}
        if calibrator is not None:
            p = calibrator.transform(s)
            row.update(brier=brier_score(y, p), ece=expected_calibration_error(y, p))
        out[name] = row
    return out


def _run_config(
    cache_dir: str | Path,
    labels: str | Path,
    config: TrainConfig,
    model: Head,
    inputs: Inputs,
    split: Split,
) -> dict:
    """config.json: the resolved configuration, the head's full settings and the split's rule."""
    return {
        "harmcache_version": harmcache.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cache": str(Path(cache_dir).resolve()),
        "labels": str(Path(labels).resolve()),
        "head": config.head,
        "head_params": model.get_params(),
        "features": sorted(inputs.families),
        "families": config.families,
        "positive": config.positive,
        "seed": config.seed,
        "split": split.record,
        "calibrate": config.calibrate,
    }


def _write_run(
    folder: Path,
    record: dict,
    joined: Joined,
    split: Split,
    inputs: Inputs,
    scores: dict[str, np.ndarray | None],
    calibrator: ScoreCalibrator | None,
) -> None:
    """The run's configuration, split, features, head, scores and calibrator."""
    write_json(folder / CONFIG_FILE, record)
    split.write(folder, joined.videos)
    write_json(folder / FEATURES_FILE, features_json(inputs.families, inputs.dims))
    inputs.head.save(folder / HEAD_DIR)
    write_val_scores(folder / VAL_SCORES_FILE, inputs.videos["val"], scores["val"])
    if scores["test"] is not None:
        write_val_scores(folder / TEST_SCORES_FILE, inputs.videos["test"], scores["test"])
    if calibrator is not None:
        write_json(folder / CALIBRATION_FILE, calibrator.to_json())
