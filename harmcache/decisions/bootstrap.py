"""Bootstrap confidence intervals for a threshold sweep.

Replicates never resample the scores themselves: resampling n videos with replacement puts a
multinomial number of draws in each (class, threshold bin) cell, with probability cell size /
n, so a replicate is one multinomial draw over 2 × (K + 1) cells."""

from __future__ import annotations

import warnings

import numpy as np

from harmcache.decisions.objective import Objective
from harmcache.decisions.rule import Counts, flagged_bins

MAX_BOOTSTRAP_THRESHOLDS = 2000
"""With --grid scores (up to one threshold per video), bootstrap on ~1,000 score quantiles."""


def bootstrap_intervals(
    y: np.ndarray,
    s: np.ndarray,
    grid: np.ndarray,
    chosen: float,
    obj: Objective,
    replicates: int,
    seed: int,
    confidence: float,
) -> dict:
    """Percentile intervals over `replicates` resamples of the validation videos: of each
    metric at the chosen threshold, of the threshold the objective would pick, and of the
    objective at every threshold (the band in the plot)."""
    if len(grid) > MAX_BOOTSTRAP_THRESHOLDS:
        grid = np.quantile(s, np.linspace(0, 1, 1001))
    grid = np.unique(np.append(grid, chosen))
    k = len(grid)
    at = int(np.searchsorted(grid, chosen))
    bins = flagged_bins(grid, s)
    cells = np.concatenate(
        [np.bincount(bins[y], minlength=k + 1), np.bincount(bins[~y], minlength=k + 1)]
    )
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(s), cells / cells.sum(), size=replicates)
    pos, neg = draws[:, : k + 1], draws[:, k + 1 :]
    # Positives flagged at threshold j: those in bins j+1..k.
    tp = np.cumsum(pos[:, ::-1], axis=1)[:, ::-1][:, 1:]
    fp = np.cumsum(neg[:, ::-1], axis=1)[:, ::-1][:, 1:]
    c = Counts(tp, fp, pos.sum(axis=1)[:, None] - tp, neg.sum(axis=1)[:, None] - fp)
    values = obj.values(c)
    feasible = np.isfinite(values)
    tail = (1 - confidence) / 2 * 100
    qs = (tail, 100 - tail)

    def interval(x: np.ndarray) -> list[float] | None:
        x = x[np.isfinite(x)]
        return [float(v) for v in np.percentile(x, qs)] if len(x) else None

    picked = np.where(feasible.any(axis=1), grid[_pick_rows(values)], np.nan)
    band_values = np.where(feasible, values, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: infeasible everywhere
        low, high = np.nanpercentile(band_values, qs, axis=0)
    return {
        "replicates": int(replicates),
        "seed": int(seed),
        "confidence": confidence,
        "ci": {
            "score": interval(values[:, at]),
            "precision": interval(c.precision[:, at]),
            "recall": interval(c.recall[:, at]),
            "f1": interval(c.fbeta(1.0)[:, at]),
            "threshold": interval(picked),
        },
        "infeasible_share": float(1 - feasible[:, at].mean()),
        "band": {"thresholds": grid, "low": low, "high": high},
    }


def _pick_rows(values: np.ndarray) -> np.ndarray:
    """Per replicate: the middle of the first run of best values (the sweep's rule, except that
    it takes the first run rather than the longest; cheap to vectorise)."""
    with np.errstate(invalid="ignore"):
        best = values.max(axis=1, keepdims=True)
        is_best = values >= best - 1e-12 * np.maximum(1.0, np.abs(best))
    first = np.argmax(is_best, axis=1)
    idx = np.arange(values.shape[1])
    after = ~is_best & (idx > first[:, None])
    end = np.where(after.any(axis=1), np.argmax(after, axis=1) - 1, values.shape[1] - 1)
    return (first + end) // 2
