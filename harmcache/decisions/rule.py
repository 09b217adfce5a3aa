"""The decision rule: a video is flagged (called harmful) when its score >= the threshold, as in
scikit-learn. Every count of flagged videos, at one threshold or many, comes from here, and an
undefined ratio (no flagged or no harmful videos) counts as 0."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def flags(scores, threshold: float) -> np.ndarray:
    """Boolean array: which scores are flagged at `threshold`."""
    return np.asarray(scores, dtype=np.float64) >= threshold


@dataclass
class Counts:
    """Confusion counts at each of K thresholds (arrays of shape (K,) or (B, K))."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray

    @property
    def precision(self) -> np.ndarray:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> np.ndarray:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def flagged(self) -> np.ndarray:
        """Share of all videos flagged."""
        return _ratio(self.tp + self.fp, self.tp + self.fp + self.fn + self.tn)

    def fbeta(self, beta: float = 1.0) -> np.ndarray:
        if beta == 1.0:
            # One division of exact integers: equal F1 values compare equal (tie detection).
            return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)
        b2 = beta * beta
        return _ratio((1 + b2) * self.tp, (1 + b2) * self.tp + b2 * self.fn + self.fp)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def counts_at(y_true, scores, thresholds) -> Counts:
    """Confusion counts at every threshold: one sort, then a binary search per threshold
    (`side="left"` counts the scores >= t, the rule of `flags`)."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(thresholds, dtype=np.float64)
    pos, neg = np.sort(s[y]), np.sort(s[~y])
    tp = len(pos) - np.searchsorted(pos, t, side="left")
    fp = len(neg) - np.searchsorted(neg, t, side="left")
    return Counts(tp, fp, len(pos) - tp, len(neg) - fp)


def below(sorted_scores: np.ndarray, thresholds) -> np.ndarray:
    """How many of `sorted_scores` are not flagged at each threshold."""
    return np.searchsorted(sorted_scores, thresholds, side="left")


def flagged_bins(grid: np.ndarray, scores) -> np.ndarray:
    """Per score, how many thresholds of the ascending `grid` flag it (those <= the score)."""
    return np.searchsorted(grid, scores, side="right")
