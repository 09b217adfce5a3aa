"""Evaluating a run at its stored threshold, and comparing runs side by side.

The headline numbers come from the test split, which chose nothing. Validation numbers are
reported too, as what the threshold (and early stopping, and the calibrator) was "tuned on".
When the run's threshold is certified, `evaluate` also says whether its targets held on the
videos evaluated; when the run has a calibrator, it reports Brier score and expected calibration
error before and after it, and draws a reliability diagram.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harmcache import metrics
from harmcache.calibration import brier_score, expected_calibration_error, reliability_diagram
from harmcache.decisions.operating_point import OperatingPoint, describe_check
from harmcache.decisions.report import fmt
from harmcache.errors import DataError, UsageError
from harmcache.heads.data import SequenceData
from harmcache.train.config import EvaluateConfig
from harmcache.train.features import check_features
from harmcache.train.labels import join_labels, read_labels
from harmcache.train.localize import (
    head_timelines,
    join_events,
    localization,
    timeline_kind,
)
from harmcache.train.report import describe_localization, headline
from harmcache.train.rundir import (
    RELIABILITY_FILE,
    TEST_SCORES_FILE,
    VAL_SCORES_FILE,
    CategoryRule,
    Run,
    load_run,
    read_val_scores,
)


@dataclass
class Evaluation:
    """Metrics of one run on one set of videos."""

    run: Path
    subset: str
    """validation | test | labels:<file>"""
    metrics: dict
    """threshold, precision, recall, f1, auroc, ap, confusion, n, n_positive"""
    notes: list[str] = field(default_factory=list)
    tuned_on: dict | None = None
    """The validation metrics at the same threshold: what the threshold was chosen on."""
    objective: str | None = None
    calibration: dict | None = None
    """method, brier_raw, ece_raw and, with a calibrator, brier and ece; plot: the PNG."""
    guarantee: dict | None = None
    """For a certified threshold: each target against what these videos show, and `held`."""
    localization: dict | None = None
    """With events: segment_auroc, segment_ap, n_seconds, n_positive_seconds (per second, on
    the evaluated videos), timeline (snippets | segments), events, tuned_on."""

    def to_json(self) -> dict:
        """The metrics flat (as `evaluate --json` prints them), with the run and subset."""
        keys = ("precision", "recall", "f1", "auroc", "ap", "threshold")
        out = {k: self.metrics[k] for k in keys}
        out.update(
            run=str(self.run),
            subset=self.subset,
            confusion=self.metrics["confusion"],
            n=self.metrics["n"],
            n_positive=self.metrics["n_positive"],
            notes=self.notes,
            objective=self.objective,
            tuned_on=self.tuned_on,
            calibration=self.calibration,
            guarantee=self.guarantee,
        )
        if self.localization is not None:
            keys = ("segment_auroc", "segment_ap", "n_seconds", "n_positive_seconds")
            out.update({k: self.localization[k] for k in keys})
            out["localization"] = self.localization
        return out

    def lines(self) -> list[str]:
        """What `harmcache evaluate` prints: the notes, the metrics at the threshold, the
        confusion matrix, what it was tuned on, calibration, the guarantee, localization."""
        m, c, cal = self.metrics, self.metrics["confusion"], self.calibration
        objective = f" ({self.objective})" if self.objective else ""
        out = [f"note: {note}" for note in self.notes]
        out.append(
            f"{self.subset}: {m['n']} videos ({m['n_positive']} harmful) at threshold "
            f"{m['threshold']:.4g}{objective}: precision {m['precision']:.4f} recall "
            f"{m['recall']:.4f} F1 {m['f1']:.4f} AUROC {fmt(m['auroc'])} AP {fmt(m['ap'])}"
        )
        out.append(f"confusion: tn {c['tn']} fp {c['fp']} fn {c['fn']} tp {c['tp']}")
        if self.tuned_on is not None:
            out.append(f"tuned on validation: {headline(self.tuned_on)}")
        if cal is not None and cal["method"] != "none":
            out.append(
                f"calibration ({cal['method']}) on {self.subset}: ECE {cal['ece_raw']:.4f} -> "
                f"{cal['ece']:.4f}, Brier {cal['brier_raw']:.4f} -> {cal['brier']:.4f}"
                + (f"; reliability diagram {cal['plot']}" if cal["plot"] else "")
            )
        elif cal is not None:
            out.append(
                f"uncalibrated scores on {self.subset}: ECE {cal['ece_raw']:.4f}, Brier "
                f"{cal['brier_raw']:.4f} (train with --calibrate isotonic for probabilities)"
            )
        if self.guarantee is not None:
            out.append(describe_check(self.guarantee))
        if self.localization is not None:
            out.append(describe_localization(self.localization))
        return out


def evaluate(
    run_dir: str | Path,
    *,
    labels: str | Path | None = None,
    cache_dir: str | Path | None = None,
    positive: list[str] | None = None,
    subset: str | None = None,
    plot: str | Path | bool = True,
    events: str | Path | None = None,
) -> Evaluation:
    """Precision, recall, F1, AUROC, AP and the confusion matrix at the run's threshold, with
    the validation numbers it was tuned on, calibration before/after and, for a certified
    threshold, whether its targets held.

    With `labels`: on those videos, read from the cache (default: the run's). Otherwise on the
    run's test split when it has one (or `subset="test"`), else on the validation scores saved
    at training time (`subset="val"`). `plot`: where to draw the reliability diagram (True: the
    run's reliability.png; False: nowhere).

    `events`: an events CSV (`harmcache.train.events`); adds per-second segment_auroc and
    segment_ap of each evaluated video's timeline (`harmcache.train.localize`)."""
    EvaluateConfig(  # the command's checks, from Python too
        labels=labels, cache_dir=cache_dir, positive=positive, subset=subset, events=events
    )
    run = load_run(run_dir)
    if len(run.rules) > 1:
        if events is not None:
            raise UsageError("--events localizes a one-category run; this run has several")
        from harmcache.train.evaluate_categories import evaluate_categories

        return evaluate_categories(
            run, labels=labels, cache_dir=cache_dir, subset=subset, plot=plot
        )
    data = None
    if labels is not None:
        y, scores, name, notes, data = _on_labels(
            run, Path(labels), cache_dir, positive, keep_data=events is not None
        )
    else:
        split = run.split()
        has_test = any(r["split"] == "test" for r in split)
        if subset == "test" or (subset is None and has_test):
            if not has_test:
                raise DataError(f"{run.path} has no test split; train with --test-fraction above 0")
            ids = sorted({r["video_id"] for r in split if r["split"] == "test"})
            by_id = {r["video_id"]: r["label"] for r in split}
            y = np.array([by_id[v] for v in ids], dtype=np.int64)
            if events is not None:  # the timelines need the sequences
                data = run.load_data(run.open_cache(cache_dir), ids, y)
                scores = run.score(data)
            else:
                scores = run.score_cache(run.open_cache(cache_dir), ids)
            name, notes = "test", []
        else:
            ids, _, y, scores = run.val_scores()
            if events is not None:
                data = run.load_data(run.open_cache(cache_dir), ids, y)
            name = "validation"
            notes = [
                "the threshold was chosen on these videos: expect these numbers to be optimistic"
            ]
    result = category_evaluation(run, run.rules[0], y, scores, name, notes, plot)
    if events is not None:
        result.localization = _localization(run, Path(events), cache_dir, data, name)
        result.notes += result.localization.pop("notes")
    return result


def category_evaluation(
    run: Run,
    rule: CategoryRule,
    y: np.ndarray,
    scores: np.ndarray,
    name: str,
    notes: list[str],
    plot: str | Path | bool,
) -> Evaluation:
    """One category's numbers at its threshold: the metrics, what its threshold was tuned on,
    calibration and, for a certified threshold, whether its targets held."""
    threshold = rule.cut
    result = Evaluation(run.path, name, metrics.summary(y, scores, threshold), notes)
    result.objective = rule.threshold.get("objective")
    if name != "validation":
        _, _, y_val, s_val = read_val_scores(rule.path / VAL_SCORES_FILE)
        result.tuned_on = metrics.summary(y_val, s_val, threshold)
    result.calibration = _calibration(rule, y, scores, name, plot, result.notes)
    result.guarantee = OperatingPoint.from_json(rule.threshold).check(y, scores, name)
    return result


def _localization(run: Run, events: Path, cache_dir, data, subset: str) -> dict:
    """Per-second metrics of the evaluated videos' timelines against `events`."""
    joined = join_events(events, run.open_cache(cache_dir))
    out = localization(joined.by_video, head_timelines(run.head, data), data)
    out.update(
        subset=subset,
        tuned_on=subset == "validation",
        timeline=timeline_kind(run.head),
        events=str(events),
        notes=joined.notes(),
    )
    if out["n_videos_with_events"] == 0:
        out["notes"].append(f"none of the {subset} videos has an event in {events.name}")
    return out


def _calibration(
    rule: CategoryRule,
    y: np.ndarray,
    scores: np.ndarray,
    subset: str,
    plot: str | Path | bool,
    notes,
) -> dict:
    out: dict = {
        "method": rule.calibrator.method if rule.calibrator else "none",
        "brier_raw": brier_score(y, scores),
        "ece_raw": expected_calibration_error(y, scores),
        "plot": None,
    }
    if rule.calibrator is None:
        return out
    p = rule.calibrator.transform(scores)
    out.update(brier=brier_score(y, p), ece=expected_calibration_error(y, p))
    if subset == "validation":
        notes.append("the calibrator was fitted on these videos: its ECE here is optimistic")
    if plot is False:
        return out
    if len(set(y.tolist())) < 2:
        notes.append("no reliability diagram: these videos hold one class only")
        return out
    path = rule.path / RELIABILITY_FILE if plot is True else Path(plot)
    out["plot"] = str(reliability_diagram(y, scores, p, path))
    return out


def _on_labels(
    run: Run, labels: Path, cache_dir, positive: list[str] | None, *, keep_data: bool
) -> tuple[np.ndarray, np.ndarray, str, list[str], SequenceData | None]:
    """The labelled videos' labels and scores; their sequences too with `keep_data` (else
    they are scored shard by shard and never held)."""
    cache = run.open_cache(cache_dir)
    rows = read_labels(labels, positive if positive is not None else run.config.get("positive"))
    videos, report = join_labels(rows, cache)
    notes = report.lines()
    missing = run.missing(cache, [v.video_id for v in videos])
    lacking = set().union(*missing.values()) if missing else set()
    if lacking:
        notes.append(
            f"{len(lacking)} labelled videos lack this run's features "
            f"({', '.join(sorted(missing))}) and are left out"
        )
    videos = [v for v in videos if v.video_id not in lacking]
    if not videos:
        raise DataError(
            f"none of the labelled videos has this run's features in {cache.root}; "
            "extract them with the run's specs first"
        )
    seen = {r["video_id"]: r["split"] for r in run.split()}
    overlap = [v for v in videos if seen.get(v.video_id) in ("train", "val")]
    if overlap:
        notes.append(
            f"{len(overlap)} of these videos were in the run's train/val split: "
            "this is not a held-out evaluation"
        )
    ids = [v.video_id for v in videos]
    y = np.array([v.label for v in videos], dtype=np.int64)
    if not keep_data:
        return y, run.score_cache(cache, ids, check=True), f"labels:{labels}", notes, None
    data = run.load_data(cache, ids, y)
    check_features(data, across_videos=False)
    return y, run.score(data), f"labels:{labels}", notes, data


@dataclass
class Comparison:
    """Runs side by side, best first: one row per run, and why they may not compare."""

    rows: list[dict]
    warnings: list[str]
    ranked_by: str = "test F1"
    """'test F1', or 'validation F1 (tuned on)' when a run has no test scores."""

    def lines(self) -> list[str]:
        """What `harmcache compare` prints: the table, best first (the warnings go apart)."""
        columns = ("thr", "prec", "recall", "f1", "auroc", "ap", "val f1")
        out = [
            f"ranked by {self.ranked_by}",
            f"{'run':30} {'head':12} " + " ".join(f"{c:>7}" for c in columns),
        ]
        category = None
        for r in self.rows:
            if r.get("category") != category:
                category = r.get("category")
                out.append(f"category {category}:")
            out.append(
                f"{Path(r['run']).name[:30]:30} {str(r['head'])[:12]:12} {r['threshold']:7.3f} "
                f"{r['precision']:7.4f} {r['recall']:7.4f} {r['f1']:7.4f} {fmt(r['auroc']):>7} "
                f"{fmt(r['ap']):>7} {r['val_f1']:7.4f}"
            )
        shown = "test" if self.ranked_by == "test F1" else "validation"
        out.append(f"columns are {shown} numbers; 'val f1' is what each threshold was tuned on")
        return out

    def to_json(self) -> dict:
        return {"runs": self.rows, "warnings": self.warnings, "ranked_by": self.ranked_by}


def compare(run_dirs: list[str | Path]) -> Comparison:
    """Each run's test metrics at its own threshold (and the validation F1 it was tuned on),
    ranked by test F1; warnings when the runs were not split the same way or used different
    features. Runs without a test split are ranked by validation F1, and the result says so.
    A run with several categories gives a row per category, each category ranked on its own."""
    rows, splits, fingerprints = [], {}, {}
    for run_dir in run_dirs:
        run = load_run(run_dir)
        several = len(run.rules) > 1
        for rule in run.rules:
            rows.append({**_compare_row(run, rule), **({"category": rule.name} if several else {})})
        splits[str(run.path)] = {(r["video_id"], r["split"]) for r in run.split()}
        fingerprints[str(run.path)] = {k: v["fingerprint"] for k, v in run.features.items()}
    warnings = []
    names = list(splits)
    for other in names[1:]:
        if splits[other] != splits[names[0]]:
            warnings.append(
                f"{other} and {names[0]} use different splits: their metrics are not comparable "
                "(train with --split-from to share one)"
            )
        shared = fingerprints[other].keys() & fingerprints[names[0]].keys()
        if any(fingerprints[other][k] != fingerprints[names[0]][k] for k in shared):
            warnings.append(f"{other} and {names[0]} use different feature fingerprints")
    if all(r["subset"] == "test" for r in rows):
        ranked_by, key = "test F1", "f1"
    else:
        ranked_by, key = "validation F1 (tuned on)", "val_f1"
        lacking = [Path(r["run"]).name for r in rows if r["subset"] != "test"]
        warnings.append(
            f"{', '.join(lacking)} have no test split: ranked by validation F1, which the "
            "thresholds were tuned on (train with --test-fraction above 0)"
        )
    # With categories, each category is ranked on its own (runs without one are left out of it).
    order = sorted(
        range(len(rows)), key=lambda i: (rows[i].get("category", ""), -(rows[i][key] or 0.0), i)
    )
    return Comparison([rows[i] for i in order], warnings, ranked_by)


def _compare_row(run: Run, rule: CategoryRule) -> dict:
    """One category of a run: its test metrics at its threshold (validation without a test
    split) and the validation numbers it was tuned on."""
    threshold = rule.cut
    _, _, y, scores = read_val_scores(rule.path / VAL_SCORES_FILE)
    val = metrics.summary(y, scores, threshold)
    test_path = rule.path / TEST_SCORES_FILE
    test = None
    if test_path.exists():
        _, _, y_test, s_test = read_val_scores(test_path)
        test = metrics.summary(y_test, s_test, threshold)
    shown = test or val
    return {
        "run": str(run.path),
        "head": run.config.get("head"),
        "features": ",".join(sorted(run.features)),
        "objective": rule.threshold.get("objective"),
        "certified": bool((rule.threshold.get("certificate") or {}).get("certified")),
        "subset": "test" if test else "validation",
        **{k: shown[k] for k in ("threshold", "precision", "recall", "f1", "auroc", "ap")},
        "n": shown["n"],
        "val_f1": val["f1"],
        "val_precision": val["precision"],
        "val_recall": val["recall"],
    }
