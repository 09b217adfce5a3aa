"""What a run keeps per category: its threshold and calibrator, tuned on its labelled validation
videos, and its metrics on its labelled test videos.

One head scores every category of a run (`Inputs.scores` is (videos, categories)); each
category is then tuned alone, on the videos labelled in it (a blank cell is masked, never read
as 0). A one-category run is the same loop with one turn, and its numbers are the ones a
binary run always had.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harmcache import metrics
from harmcache.calibration import ScoreCalibrator, brier_score, expected_calibration_error
from harmcache.decisions.grid import DEFAULT_GRID
from harmcache.decisions.sweep import SweepResult, sweep
from harmcache.errors import DataError
from harmcache.train.labels import LabeledVideo

SIDES = ("train", "val", "test")


@dataclass
class CategoryOutcome:
    """One category of a run: its labelled videos per side, their labels and scores, the
    threshold chosen on validation, the calibrator and the metrics."""

    name: str
    videos: dict[str, list[LabeledVideo]]
    """side → the videos labelled in this category"""
    y: dict[str, np.ndarray]
    scores: dict[str, np.ndarray | None]
    """val and test → this category's scores of those videos (test: None without a test split)"""
    choice: SweepResult
    calibrator: ScoreCalibrator | None
    metrics: dict

    @property
    def threshold(self) -> float:
        return self.choice.threshold


def labelled_part(
    videos: dict[str, list[LabeledVideo]], targets: dict[str, np.ndarray], k: int
) -> tuple[dict[str, list[LabeledVideo]], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per side: the videos labelled in category `k`, their 0/1 labels, and where they sit."""
    keep = {side: np.flatnonzero(~np.isnan(targets[side][:, k])) for side in videos}
    parts = {side: [videos[side][i] for i in keep[side]] for side in videos}
    y = {side: targets[side][keep[side], k].astype(np.int64) for side in videos}
    return parts, y, keep


def check_category_sides(name: str, y: dict[str, np.ndarray]) -> None:
    """Training and validation need both classes in every category, as in a binary run."""
    for side in ("train", "val"):
        n_pos, n = int(y[side].sum()), len(y[side])
        if n_pos == 0 or n_pos == n:
            raise DataError(
                f"category {name}: the {side} split has {n_pos} positive and {n - n_pos} "
                f"negative labelled videos; each side needs both (label more videos in {name}, "
                "or drop the column)"
            )


def tune_categories(
    categories: list[str],
    videos: dict[str, list[LabeledVideo]],
    targets: dict[str, np.ndarray],
    scores: dict[str, np.ndarray | None],
    calibrate: str,
) -> list[CategoryOutcome]:
    """Each category's threshold (best F1 on its validation videos), calibrator and metrics.
    `scores`: val and test → (videos, categories), or None for an empty test split."""
    out = []
    for k, name in enumerate(categories):
        parts, y, keep = labelled_part(videos, targets, k)
        picked: dict[str, np.ndarray | None] = {
            side: None if scores.get(side) is None else scores[side][keep[side], k]
            for side in ("val", "test")
        }
        if picked["test"] is not None and not len(picked["test"]):
            picked["test"] = None
        choice = sweep(y["val"], picked["val"], "f1", DEFAULT_GRID)
        calibrator = None if calibrate == "none" else ScoreCalibrator(calibrate)
        if calibrator is not None:
            calibrator.fit(picked["val"], y["val"])
        numbers = category_metrics(y, picked, choice.threshold, calibrator)
        numbers["counts"] = {
            side: {"videos": len(parts[side]), "harmful": int(y[side].sum())} for side in parts
        }
        out.append(CategoryOutcome(name, parts, y, picked, choice, calibrator, numbers))
    return out


def category_metrics(
    y: dict[str, np.ndarray],
    scores: dict[str, np.ndarray | None],
    threshold: float,
    calibrator: ScoreCalibrator | None,
) -> dict:
    """test (None without a test split), then validation ("tuned on"), with calibration."""
    test = scores["test"]
    return {
        "test": None if test is None else metrics.summary(y["test"], test, threshold),
        "val": metrics.summary(y["val"], scores["val"], threshold),
        "calibration": calibration_report(calibrator, y["val"], scores["val"], y["test"], test),
    }


def calibration_report(
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


AVERAGED = ("precision", "recall", "f1", "auroc", "ap")


def averages(per_category: list[dict], side: str) -> dict | None:
    """Macro (mean over categories) and micro (pooled counts) figures on `side`, from each
    category's metrics (`CategoryOutcome.metrics`) at its own threshold; None when no
    category has videos there."""
    rows = [m[side] for m in per_category if m.get(side) is not None]
    if not rows:
        return None
    macro = {k: float(np.nanmean([r[k] for r in rows])) for k in AVERAGED}
    tp = sum(r["confusion"]["tp"] for r in rows)
    fp = sum(r["confusion"]["fp"] for r in rows)
    fn = sum(r["confusion"]["fn"] for r in rows)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "macro": macro,
        "micro": {"precision": precision, "recall": recall, "f1": f1},
        "categories": len(rows),
    }
