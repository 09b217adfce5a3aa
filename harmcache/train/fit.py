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
from harmcache.decisions.category_scores import CATEGORY_SCORES_FILE
from harmcache.errors import UsageError
from harmcache.heads.base import EpochCallback, Head, log_epoch, make_head
from harmcache.store.cache import FeatureCache
from harmcache.train.categories import Taxonomy
from harmcache.train.config import TrainConfig
from harmcache.train.inputs import Inputs, Joined, join_videos, small_shards
from harmcache.train.join_report import JoinReport
from harmcache.train.labels import check_classes
from harmcache.train.localize import (
    Events,
    head_timelines,
    join_events,
    localization,
    timeline_kind,
    with_localization,
)
from harmcache.train.near_duplicates import group_near_duplicates
from harmcache.train.per_category import (
    CategoryOutcome,
    averages,
    check_category_sides,
    labelled_part,
    tune_categories,
)
from harmcache.train.result import RunResult
from harmcache.train.rundir import (
    CALIBRATION_FILE,
    CATEGORIES_FILE,
    CONFIG_FILE,
    FEATURES_FILE,
    HEAD_DIR,
    METRICS_FILE,
    TEST_CATEGORY_SCORES_FILE,
    TEST_SCORES_FILE,
    THRESHOLD_FILE,
    VAL_SCORES_FILE,
    categories_json,
    category_dir,
    check_out,
    features_json,
    incomplete,
    threshold_json,
    write_category_scores,
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
    segment AUROC/AP of the validation and test timelines), `taxonomy` (parents and children
    of the labels' categories), `near_duplicates` (group or off: near-duplicate videos share a
    side of the split; default group when the cache has a pdq family), `force`. Or `head` is a whole
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
    taxonomy = None if config.taxonomy is None else Taxonomy.read(config.taxonomy)
    joined = join_videos(cache, labels, config.positive, config.features, config.families, taxonomy)
    if config.events is not None and len(joined.categories) > 1:
        raise UsageError("--events localizes a one-category run; these labels have several")
    near = group_near_duplicates(cache, joined.videos, config.near_duplicates)
    joined.report.near_duplicates = near.to_json()
    joined.report.near_duplicate_lines = near.lines()
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
    _align_prompts(model, joined)
    loading = time.perf_counter()
    inputs = Inputs.load(cache, joined, split, model, leave_out=config.features is None)
    for k, name in enumerate(joined.categories):
        check_category_sides(name, labelled_part(inputs.videos, inputs.targets, k)[1])
    timer["load"] = time.perf_counter() - loading
    if len(joined.categories) > 1:
        on_epoch = _naming(on_epoch, joined.categories)
    if events is not None:
        on_epoch = with_localization(model, on_epoch, events.by_video, inputs.sequences("val"))
    fitting = time.perf_counter()
    inputs.fit_head(on_epoch)
    timer["fit"] = time.perf_counter() - fitting

    # Per category: tune the threshold and calibrate on validation; score the test split once;
    # localize.
    scores = {"val": inputs.scores("val")}
    scores["test"] = inputs.scores("test") if inputs.ids["test"] else None
    outcomes = tune_categories(
        joined.categories, inputs.videos, inputs.targets, scores, config.calibrate
    )
    localized = None if events is None else _localize(model, events, inputs)
    notes += [] if events is None else events.notes()
    timer["total"] = time.perf_counter() - started

    # Write the run directory.
    run_metrics = _run_metrics(model, inputs, joined.report, outcomes)
    run_metrics["seconds"] = timer
    if localized is not None:
        run_metrics["localization"] = localized
    thresholds = {o.name: threshold_json(o.choice) for o in outcomes}
    record = _run_config(cache_dir, labels, config, model, inputs, split)
    with incomplete(out) as tmp:
        _write_run(tmp, record, joined, split, inputs, scores, outcomes)
        write_json(tmp / METRICS_FILE, run_metrics)
        for o in outcomes:
            write_json(
                category_dir(tmp, o.name, len(outcomes)) / THRESHOLD_FILE, thresholds[o.name]
            )
    return RunResult(
        out, joined.report, inputs.families, run_metrics["counts"], run_metrics,
        thresholds[outcomes[0].name] if len(outcomes) == 1 else {"threshold": None},
        timer, notes, head=config.head, thresholds=thresholds,
    )  # fmt: skip


def _align_prompts(model: Head, joined: Joined) -> None:
    """A head that names the categories it scores (the prompts head) must name the labels'
    categories, and its text must come from the weights of the CLIP family it will read."""
    named = getattr(model, "categories", None)
    if named is None:
        return
    if set(named) != set(joined.categories):
        raise UsageError(
            f"the prompts name {', '.join(named)}; the labels' categories are "
            f"{', '.join(joined.categories)}: give each labelled category its prompts"
        )
    family = joined.families.get("clip")
    if family is None:
        raise UsageError("the prompts head scores CLIP frames: train it with --features clip")
    if model.text_weights != family.spec.get("weights"):
        raise UsageError(
            f"the prompts' text embeddings come from other CLIP weights ({model.text_weights}) "
            f"than the family {family.name} ({family.spec.get('weights')}); make them from it"
        )
    model.set_params(text={c: model.text[c] for c in joined.categories})


def _log_join(report: JoinReport) -> None:
    for line in report.lines():
        log.info("%s", line)


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
    model: Head, inputs: Inputs, report: JoinReport, outcomes: list[CategoryOutcome]
) -> dict:
    """metrics.json: test (None without a test split), then validation ("tuned on"), with
    calibration, the counts, the join and the training history. With one category these are
    its numbers; with several, each category's are under "categories" and test and val hold
    their macro and micro averages."""
    out = {
        "counts": {
            name: {"videos": len(part), "harmful": int(sum(v.label for v in part))}
            for name, part in inputs.videos.items()
        },
        "join": report.to_json(),
        "history": getattr(model, "history_", []),
        "best_epoch": getattr(model, "best_epoch_", None),
    }
    if len(outcomes) == 1:
        return {**outcomes[0].metrics, **out, "counts": out["counts"]}
    return {
        "test": averages([o.metrics for o in outcomes], "test"),
        "val": averages([o.metrics for o in outcomes], "val"),
        "calibration": {"method": outcomes[0].metrics["calibration"]["method"]},
        "categories": {o.name: o.metrics for o in outcomes},
        **out,
    }


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
    outcomes: list[CategoryOutcome],
) -> None:
    """The run's configuration, split, features and head; every category's scores as one
    table per side; and each category's own scores and calibrator, in its folder."""
    write_json(folder / CONFIG_FILE, record)
    split.write(folder, joined.videos)
    write_json(folder / FEATURES_FILE, features_json(inputs.families, inputs.dims))
    write_json(folder / CATEGORIES_FILE, categories_json(joined.categories, joined.taxonomy))
    inputs.head.save(folder / HEAD_DIR)
    for side, name in (("val", CATEGORY_SCORES_FILE), ("test", TEST_CATEGORY_SCORES_FILE)):
        if scores[side] is not None:
            write_category_scores(
                folder / name, inputs.videos[side], joined.categories, inputs.targets[side],
                scores[side],
            )  # fmt: skip
    for o in outcomes:
        where = category_dir(folder, o.name, len(outcomes))
        where.mkdir(parents=True, exist_ok=True)
        write_val_scores(where / VAL_SCORES_FILE, o.videos["val"], o.scores["val"], o.y["val"])
        if o.scores["test"] is not None:
            write_val_scores(
                where / TEST_SCORES_FILE, o.videos["test"], o.scores["test"], o.y["test"]
            )
        if o.calibrator is not None:
            write_json(where / CALIBRATION_FILE, o.calibrator.to_json())


def _naming(on_epoch: EpochCallback | None, names: list[str]) -> EpochCallback:
    """`on_epoch` (default: the log) with the categories' names on each report."""
    report_to = on_epoch or log_epoch

    def named(report) -> None:
        report.category_names = list(names)
        report_to(report)

    return named
