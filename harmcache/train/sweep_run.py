"""Choosing a run's decision threshold again: sweep the validation scores it saved, then
rewrite threshold.json (and the validation metrics in metrics.json) and draw threshold.png.
The sweep itself lives in `harmcache.train.threshold`; this module applies it to a run."""

from __future__ import annotations

import json
from pathlib import Path

from harmcache import metrics
from harmcache.errors import UsageError
from harmcache.train.rundir import (
    METRICS_FILE,
    PLOT_FILE,
    THRESHOLD_FILE,
    VAL_SCORES_FILE,
    read_val_scores,
    threshold_json,
    write_json,
)
from harmcache.train.threshold import DEFAULT_GRID, SweepResult, sweep
from harmcache.train.threshold import plot as plot_sweep


def sweep_threshold(
    run_dir: str | Path,
    objective: str = "f1",
    grid: str = DEFAULT_GRID,
    *,
    bootstrap: int = 0,
    seed: int = 0,
    review_band: tuple[float, float] | None = None,
    plot: bool = True,
) -> SweepResult:
    """Choose the threshold of the run in `run_dir` on its saved validation scores.

    `objective` is f1, f<beta>, recall>=R or precision>=P; `grid` is start:stop:step or
    "scores". Rewrites threshold.json and the validation metrics in metrics.json, draws
    threshold.png unless `plot` is False, and returns the sweep."""
    path = Path(run_dir)
    if not (path / VAL_SCORES_FILE).exists():
        raise UsageError(f"{path} is not a run directory: {VAL_SCORES_FILE} is missing")
    _, _, y, scores = read_val_scores(path / VAL_SCORES_FILE)
    result = sweep(
        y, scores, objective, grid, bootstrap=bootstrap, seed=seed, review_band=review_band
    )
    picture = None
    if plot:
        plot_sweep(result, y, scores, path / PLOT_FILE)
        picture = PLOT_FILE
    write_json(path / THRESHOLD_FILE, threshold_json(result, picture))
    metrics_path = path / METRICS_FILE
    if metrics_path.exists():
        data = json.loads(metrics_path.read_text())
        data["val"] = metrics.summary(y, scores, result.threshold)
        write_json(metrics_path, data)
    return result
