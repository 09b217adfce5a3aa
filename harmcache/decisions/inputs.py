"""Checking labels and scores before a threshold is certified, and the thresholds it tests."""

from __future__ import annotations

import numpy as np

from harmcache.decisions.grid import DEFAULT_THRESHOLDS
from harmcache.decisions.objective import Objective
from harmcache.errors import DataError

DEFAULT_PRECISION_GRID = DEFAULT_THRESHOLDS
"""Thresholds tested for precision>=P, fixed before the data is seen (the sweep's default grid).
The fallback procedure carries its level down a run of passed thresholds, so a fine grid costs
little; a coarse one costs recall between its points."""


def labelled_scores(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    """0/1 labels (int64) and finite scores (float64) of equal length with both classes, or a
    DataError saying what is wrong."""
    y = np.asarray(y_true)
    s = np.asarray(scores, dtype=float) if numeric(scores) else None
    if s is None:
        raise DataError("scores must be numbers")
    if y.ndim != 1 or s.ndim != 1:
        raise DataError(f"labels and scores must be 1-D, got shapes {y.shape} and {s.shape}")
    if len(y) != len(s):
        raise DataError(f"{len(y)} labels but {len(s)} scores")
    if len(y) == 0:
        raise DataError("no calibration videos: labels and scores are empty")
    values = set(np.unique(y).tolist())
    if not values <= {0, 1}:  # True and False compare equal to 1 and 0
        odd = sorted(map(str, values - {0, 1}))[:5]
        raise DataError(f"labels must be 0 or 1, got {', '.join(odd)}")
    bad = int((~np.isfinite(s)).sum())
    if bad:
        raise DataError(f"{bad} of {len(s)} scores are NaN or infinite")
    y = y.astype(np.int64)
    n_pos = int(y.sum())
    if n_pos in (0, len(y)):
        which = "positive" if n_pos else "negative"
        raise DataError(
            f"calibration labels hold one class only (all {len(y)} are {which}); a guarantee "
            "needs both harmful and harmless videos"
        )
    return y, s


def numeric(x) -> bool:
    try:
        return np.asarray(x).dtype.kind in "biuf"
    except (TypeError, ValueError):
        return False


def candidates(obj: Objective, s: np.ndarray, grid) -> np.ndarray:
    """The thresholds a certificate tests: `grid` if given, else every distinct score for
    recall, the fixed DEFAULT_PRECISION_GRID for precision."""
    if grid is not None:
        g = np.asarray(grid, dtype=float) if numeric(grid) else None
        if g is None or g.ndim != 1 or not len(g) or not np.isfinite(g).all():
            raise DataError("grid must be a non-empty 1-D list of finite thresholds")
        return np.unique(g)
    if obj.primary.metric == "recall":
        return np.unique(s)
    if s.min() < 0 or s.max() > 1:
        raise DataError(
            f"precision>= tests a grid fixed in advance (0.01 ... 0.99 by default) but the scores "
            f"run from {s.min():.3g} to {s.max():.3g}; pass grid= on the scores' own scale"
        )
    return DEFAULT_PRECISION_GRID.copy()
