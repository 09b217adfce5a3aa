"""Evaluating a run at its stored threshold, and comparing runs side by side."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harmcache import metrics
from harmcache.errors import DataError
from harmcache.train.features import check_features
from harmcache.train.labels import join_labels, read_labels
from harmcache.train.rundir import Run, load_run


@dataclass
class Evaluation:
    """Metrics of one run on one set of videos."""

    run: Path
    subset: str
    """validation | test | labels:<file>"""
    metrics: dict
    """threshold, precision, recall, f1, auroc, ap, confusion, n, n_positive"""
    notes: list[str] = field(default_factory=list)

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
        )
        return out


def evaluate(
    run_dir: str | Path,
    *,
    labels: str | Path | None = None,
    cache_dir: str | Path | None = None,
    positive: list[str] | None = None,
    subset: str | None = None,
) -> Evaluation:
    """Precision, recall, F1, AUROC, AP and the confusion matrix at the run's threshold.

    With `labels`: on those videos, read from the cache (default: the run's). Otherwise on the
    run's test split when it has one (or `subset="test"`), else on the validation scores saved
    at training time (`subset="val"`)."""
    run = load_run(run_dir)
    threshold = float(run.threshold["threshold"])
    if labels is not None:
        return _on_labels(run, Path(labels), cache_dir, positive, threshold)
    split = run.split()
    has_test = any(r["split"] == "test" for r in split)
    if subset == "test" or (subset is None and has_test):
        if not has_test:
            raise DataError(f"{run.path} has no test split; train with --test-fraction")
        ids = sorted({r["video_id"] for r in split if r["split"] == "test"})
        y = {r["video_id"]: r["label"] for r in split}
        labels_arr = np.array([y[v] for v in ids], dtype=np.int64)
        cache = run.open_cache(cache_dir)
        scores = run.score(run.load_data(cache, ids, labels_arr))
        return Evaluation(run.path, "test", metrics.summary(labels_arr, scores, threshold))
    _, _, y, scores = run.val_scores()
    notes = ["the threshold was chosen on these videos: expect these numbers to be optimistic"]
    return Evaluation(run.path, "validation", metrics.summary(y, scores, threshold), notes)


def _on_labels(
    run: Run, labels: Path, cache_dir, positive: list[str] | None, threshold: float
) -> Evaluation:
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
    data = run.load_data(cache, ids, y)
    check_features(data, across_videos=False)
    scores = run.score(data)
    return Evaluation(run.path, f"labels:{labels}", metrics.summary(y, scores, threshold), notes)


@dataclass
class Comparison:
    """Runs side by side: one row of validation metrics per run, and why they may not compare."""

    rows: list[dict]
    warnings: list[str]


def compare(run_dirs: list[str | Path]) -> Comparison:
    """Each run's validation metrics at its own threshold, with warnings when the runs were
    not validated on the same videos or used different features."""
    rows, splits, fingerprints = [], {}, {}
    for run_dir in run_dirs:
        run = load_run(run_dir)
        _, _, y, scores = run.val_scores()
        m = metrics.summary(y, scores, float(run.threshold["threshold"]))
        rows.append(
            {
                "run": str(run.path),
                "head": run.config.get("head"),
                "features": ",".join(sorted(run.features)),
                "objective": run.threshold.get("objective"),
                **{k: m[k] for k in ("threshold", "precision", "recall", "f1", "auroc", "ap", "n")},
            }
        )
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
    return Comparison(rows, warnings)
