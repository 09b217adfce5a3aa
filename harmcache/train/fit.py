"""Training orchestration: labels + cache → a fitted head in a self-contained run directory.

`train` joins the labels to the cache, splits (hash-assigned, stratified, grouped; or reused),
reads the features shard by shard (`_Inputs`), fits the head with early stopping on
validation, picks the best-F1 threshold and fits the score calibrator on the validation scores,
then scores the test split once, for the record, and writes the run directory
(`harmcache.train.rundir`). Nothing is chosen on the test split: its numbers are the honest
ones, the validation numbers are "tuned on".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

import harmcache
from harmcache import metrics
from harmcache.calibration import METHODS as CALIBRATION_METHODS
from harmcache.calibration import ScoreCalibrator, brier_score, expected_calibration_error
from harmcache.errors import DataError, UsageError
from harmcache.heads.base import EpochCallback, EpochReport, Head, log_epoch, make_head
from harmcache.heads.data import PooledData, SequenceData
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.train.features import (
    check_scans,
    constant_modalities,
    load_sequences,
    scan_cache,
    select_families,
)
from harmcache.train.labels import (
    JoinReport,
    LabeledVideo,
    check_classes,
    join_labels,
    read_labels,
    without_rows_line,
)
from harmcache.train.loader import StreamingLoader, pool_cache
from harmcache.train.localize import DEFAULT_SEGMENTS, head_timelines, join_events, localization
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
from harmcache.train.split import (
    DEFAULT_TEST_FRACTION,
    DEFAULT_VAL_FRACTION,
    HASH_VERSION,
    SPLIT_FILE,
    check_fractions,
    check_split,
    missing_classes,
    split_from_labels,
    split_from_run,
    stratified_split,
    write_split,
)
from harmcache.train.threshold import DEFAULT_GRID, sweep

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What `train` did."""

    run_dir: Path
    join: JoinReport
    families: dict[str, Family]
    counts: dict[str, dict[str, int]]
    """split → {"videos", "harmful"}"""
    metrics: dict
    """test (None without a test split), val (tuned on), calibration, counts, ..."""
    threshold: dict
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """What the user should know about the split (videos assigned anew, a class missing)."""


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
    val_fraction: float = DEFAULT_VAL_FRACTION,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    calibrate: str = "isotonic",
    head_params: dict[str, Any] | None = None,
    force: bool = False,
    on_join: Callable[[JoinReport], None] | None = None,
    on_epoch: EpochCallback | None = None,
    events: str | Path | None = None,
) -> RunResult:
    """Join labels to the cache, split, fit a head, and write the run directory `out`.

    `calibrate`: isotonic, sigmoid or none: the map from raw scores to probabilities, fitted on
    the validation scores (`harmcache.calibration`). `events`: an events CSV; the run's
    metrics then hold per-second segment AUROC/AP of the validation and test timelines
    (`metrics["localization"]`), measured once after fitting."""
    out = Path(out)
    check_out(out, force)
    check_fractions(val_fraction, test_fraction)
    if calibrate not in (*CALIBRATION_METHODS, "none"):
        raise UsageError(
            f"--calibrate must be one of {', '.join((*CALIBRATION_METHODS, 'none'))}, "
            f"got {calibrate!r}"
        )
    started = time.perf_counter()
    cache = FeatureCache(cache_dir)
    videos, report, chosen = _join(cache, labels, positive, features, families)
    (on_join or _log_join)(report)
    joined_events = None if events is None else join_events(events, cache)
    check_classes(videos)
    assignment, split_config, notes = _assign_split(
        videos, split_from, seed, val_fraction, test_fraction
    )
    check_split(videos, assignment)
    notes += missing_classes(videos, assignment)
    notes += _small_shards(cache, chosen)
    parts = {
        name: [v for v in videos if assignment[v.video_id] == name]
        for name in ("train", "val", "test")
    }

    ids = {name: [v.video_id for v in part] for name, part in parts.items()}
    y = {name: np.array([v.label for v in part], dtype=np.int64) for name, part in parts.items()}
    model = make_head(head, **{"seed": seed, **(head_params or {})})
    loading = time.perf_counter()
    chosen, dims = _check_parts(cache, chosen, ids, report, leave_out=features is None)
    inputs = _Inputs(cache, chosen, model)
    val_data = inputs.part(ids["val"], y["val"])
    timer = {"load": time.perf_counter() - loading}
    if joined_events is not None:
        val_sequences = (  # the pooled heads' validation input holds no timeline
            val_data
            if isinstance(val_data, SequenceData)
            else load_sequences(cache, chosen, ids["val"], y["val"])
        )
        on_epoch = _with_localization(model, on_epoch, joined_events.by_video, val_sequences)
    fitting = time.perf_counter()
    if inputs.streamed:
        stream = StreamingLoader(
            cache, chosen, ids["train"], y["train"], batch_size=model.batch_size, seed=model.seed
        )
        model.fit_stream(stream, eval_set=val_data, on_epoch=on_epoch)
    else:
        model.fit(inputs.part(ids["train"], y["train"]), eval_set=val_data, on_epoch=on_epoch)
    timer["fit"] = time.perf_counter() - fitting
    scores = model.predict_proba(val_data)[:, 1]
    choice = sweep(y["val"], scores, "f1", DEFAULT_GRID)
    calibrator = None
    if calibrate != "none":
        calibrator = ScoreCalibrator(calibrate).fit(scores, y["val"])
    test_scores = inputs.scores(ids["test"]) if ids["test"] else None
    localized = None
    if joined_events is not None:
        notes += joined_events.notes()
        kind = "snippets" if hasattr(model, "timelines") else f"{DEFAULT_SEGMENTS} segments"
        localized = {}
        for name in ("val", "test"):
            if ids[name]:
                part = (
                    val_sequences
                    if name == "val"
                    else load_sequences(cache, chosen, ids[name], y[name])
                )
                timelines = head_timelines(model, part)
                localized[name] = {
                    **localization(joined_events.by_video, timelines, part),
                    "timeline": kind,
                }
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
        "split": split_config,
        "calibrate": calibrate,
    }
    run_metrics = {
        "test": None
        if test_scores is None
        else metrics.summary(y["test"], test_scores, choice.threshold),
        "val": metrics.summary(y["val"], scores, choice.threshold),
        "calibration": _calibration_report(calibrator, y["val"], scores, y["test"], test_scores),
        "counts": counts,
        "join": report.to_json(),
        "history": getattr(model, "history_", []),
        "best_epoch": getattr(model, "best_epoch_", None),
        "seconds": timer,
    }
    if localized is not None:
        run_metrics["localization"] = {**localized, "events": str(Path(events).resolve())}
    threshold = threshold_json(choice)
    with incomplete(out) as tmp:
        write_json(tmp / CONFIG_FILE, config)
        write_split(tmp / SPLIT_FILE, videos, assignment)
        write_json(tmp / FEATURES_FILE, features_json(chosen, dims))
        model.save(tmp / HEAD_DIR)
        write_val_scores(tmp / VAL_SCORES_FILE, parts["val"], scores)
        if test_scores is not None:
            write_val_scores(tmp / TEST_SCORES_FILE, parts["test"], test_scores)
        if calibrator is not None:
            write_json(tmp / CALIBRATION_FILE, calibrator.to_json())
        write_json(tmp / METRICS_FILE, run_metrics)
        write_json(tmp / THRESHOLD_FILE, threshold)
    return RunResult(out, report, chosen, counts, run_metrics, threshold, timer, notes)


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


def _with_localization(
    model: Head, on_epoch: EpochCallback | None, events: dict, val: SequenceData
) -> EpochCallback:
    """`on_epoch` with each validated epoch's per-second localization on the validation videos
    added to its report: how well the timeline finds the events as training goes."""
    report_to = on_epoch or log_epoch

    def per_epoch(report: EpochReport) -> None:
        if report.rows:
            # Mid-fit the head is not fitted yet by sklearn's rules; its weights score already.
            unfitted = not hasattr(model, "classes_")
            model.classes_ = np.array([0, 1])
            try:
                report.localization = localization(events, head_timelines(model, val), val)
            finally:
                if unfitted:
                    del model.classes_
        report_to(report)

    return per_epoch


SCORE_CHUNK = 512
"""Videos loaded at a time to score a split with a sequence head: memory stays bounded."""


class _Inputs:
    """How a head gets its features from the cache.

    LightGBM and logreg use pooled statistics only: they get a `PooledData` pooled shard by
    shard (never the sequences). The Transformer trains from a `StreamingLoader` (a shuffle
    buffer, never the whole split). Every sequence head scores a split `SCORE_CHUNK` videos at
    a time. The validation split, which early stopping scores after every epoch, is held."""

    def __init__(self, cache: FeatureCache, families: dict[str, Family], head: Head):
        self.cache, self.families, self.head = cache, families, head
        self.streamed = hasattr(head, "fit_stream")

    def part(self, video_ids: list[str], labels: np.ndarray) -> SequenceData | PooledData:
        if self.head.pooled_stats is not None:
            return pool_cache(self.cache, self.families, video_ids, self.head.pooled_stats, labels)
        return load_sequences(self.cache, self.families, video_ids, labels)

    def scores(self, video_ids: list[str]) -> np.ndarray:
        """The head's harmful probability of each video, in `video_ids` order."""
        step = len(video_ids) if self.head.pooled_stats is not None else SCORE_CHUNK
        parts = [
            self.head.predict_proba(self.part(video_ids[i : i + step], None))[:, 1]
            for i in range(0, len(video_ids), step)
        ]
        return np.concatenate(parts) if parts else np.zeros(0)


SMALL_SHARD = 64
"""Fewer videos than this per shard, on average, and reading is bound by opening files."""


def _small_shards(cache: FeatureCache, chosen: dict[str, Family]) -> list[str]:
    sizes = [n for fam in chosen.values() for n in cache.index.shard_sizes(fam.name)]
    if len(sizes) < 64 or sum(sizes) / len(sizes) >= SMALL_SHARD:
        return []
    return [
        f"the cache holds {len(sizes)} shards of {sum(sizes) / len(sizes):.0f} videos on "
        f"average; `harmcache cache compact {cache.root}` merges them so training reads a few "
        "large shards instead"
    ]


def _check_parts(
    cache: FeatureCache,
    chosen: dict[str, Family],
    ids: dict[str, list[str]],
    report: JoinReport,
    *,
    leave_out: bool,
) -> tuple[dict[str, Family], dict[str, int]]:
    """The content guards on the training and validation videos, scanned shard by shard;
    the families left, and their feature widths. With the default feature set (`leave_out`),
    a modality that carries nothing for the training videos is left out as long as another
    remains: identical in every one (random-init YOLO that detects nothing), or without rows
    in any (SlowFast on still images). `check_scans` refuses it when it was asked for, or when
    nothing else is left. Videos without rows in a modality are counted in `report`."""
    scans = {name: scan_cache(cache, chosen, part) for name, part in ids.items() if part}
    useless = constant_modalities(scans["train"])
    for name, scan in scans["train"].items():
        if not scan.has.any():
            useless[name] = f"no rows in any of the {len(scan.has)} training videos"
    if leave_out and useless and len(useless) < len(chosen):
        for extractor, why in useless.items():
            log.warning("left %s features out: %s", extractor, why)
            report.left_out[extractor] = why
            for part in scans.values():
                del part[extractor]
        chosen = {ex: fam for ex, fam in chosen.items() if ex not in useless}
    for extractor in chosen:
        empty = sum(int((~part[extractor].has).sum()) for part in scans.values())
        if empty:
            report.without_rows[extractor] = empty
            log.info("%s", without_rows_line(extractor, empty))
    check_scans(scans["train"], ids["train"])
    check_scans(scans["val"], ids["val"])
    return chosen, {name: scan.dim for name, scan in scans["train"].items()}


def _drop_incomplete(
    cache: FeatureCache, chosen: dict[str, Family], videos: list[LabeledVideo], report: JoinReport
) -> list[LabeledVideo]:
    """Keep the videos every chosen family holds, with a row in at least one of them; count
    the others (per missing extractor, and those with no row anywhere, e.g. an audio-only
    feature set and a video without a sound track)."""
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
    ids = [v.video_id for v in keep]
    rows = [cache.row_counts(fam, ids) for fam in chosen.values()]
    rowless = {vid for vid in ids if not any(counts[vid] for counts in rows)}
    report.no_rows = len(rowless)
    keep = [v for v in keep if v.video_id not in rowless]
    if not keep:
        raise DataError(
            "no labelled video has a row in any chosen family ("
            + ", ".join(f.name for f in chosen.values())
            + "); pick other --features"
        )
    return keep


def _assign_split(
    videos: list[LabeledVideo],
    split_from: str | Path | None,
    seed: int,
    val_fraction: float,
    test_fraction: float,
) -> tuple[dict[str, str], dict, list[str]]:
    """The assignment, the split's record for config.json (the rule that assigns videos added
    later: its seed and fractions), and notes for the user."""
    from_labels = split_from_labels(videos)
    if from_labels is not None:
        if split_from is not None:
            raise UsageError("the labels file has a split column; drop it or drop --split-from")
        return from_labels, {"source": "labels"}, []
    if split_from is not None:
        inherited = split_from_run(split_from, videos)
        notes = []
        if inherited.new:
            sides = ", ".join(f"{side} {n}" for side, n in sorted(inherited.new.items()))
            by_group = inherited.new_by_group
            grouped = f", {by_group} of them with their group" if by_group else ""
            notes.append(
                f"--split-from {split_from}: {sum(inherited.new.values())} videos not in its split "
                f"were assigned by its rule ({sides}){grouped}"
            )
        source_config = _split_config_of(Path(split_from))
        config = {**source_config, "source": f"run:{Path(split_from).resolve()}"}
        return inherited.assignment, config, notes
    assignment = stratified_split(
        videos, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
    )
    config = {
        "source": "hash",
        "rule": HASH_VERSION,
        "seed": seed,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
    }
    return assignment, config, []


def _split_config_of(run_dir: Path) -> dict:
    """The rule (seed and fractions) that a run's split was made with."""
    import json

    path = run_dir / CONFIG_FILE
    if not path.exists():
        return {}
    config = json.loads(path.read_text())
    split = dict(config.get("split") or {})
    split.setdefault("seed", config.get("seed", 0))
    split.pop("source", None)
    return split
