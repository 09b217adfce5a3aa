"""Binary metrics at decision thresholds. A video is called harmful when its score >= threshold
(scikit-learn's rule), and an undefined ratio (no predicted or no true positives) counts as 0.

A leaf module (NumPy only; scikit-learn inside `summary`): heads, threshold sweeps and
evaluation all share it without depending on each other."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TABLE_THRESHOLDS = np.round(np.arange(0.30, 0.7001, 0.05), 2)
"""The per-epoch table of the reports: 0.30 to 0.70 in steps of 0.05."""


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


def counts_at(y_true: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> Counts:
    """Confusion counts at every threshold: one sort, then a binary search per threshold."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(thresholds, dtype=np.float64)
    pos, neg = np.sort(s[y]), np.sort(s[~y])
    tp = len(pos) - np.searchsorted(pos, t, side="left")
    fp = len(neg) - np.searchsorted(neg, t, side="left")
    return Counts(tp, fp, len(pos) - tp, len(neg) - fp)


def threshold_rows(
    y_true: np.ndarray, scores: np.ndarray, thresholds=TABLE_THRESHOLDS
) -> list[dict]:
    """precision, recall, F1 and the confusion matrix at each threshold."""
    c = counts_at(y_true, scores, thresholds)
    p, r, f = c.precision, c.recall, c.fbeta(1.0)
    return [
        {
            "threshold": float(t),
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "tn": int(c.tn[i]),
            "fp": int(c.fp[i]),
            "fn": int(c.fn[i]),
            "tp": int(c.tp[i]),
        }
        for i, t in enumerate(np.asarray(thresholds))
    ]


def best_row(rows: list[dict]) -> dict:
    """The row with the highest F1 (the first one on ties)."""
    return max(rows, key=lambda r: r["f1"])


def format_rows(rows: list[dict], best: dict | None = None) -> str:
    """A fixed-width table of `threshold_rows`, the best row marked."""
    lines = ["  thr   prec  recall     f1 |    tn    fp    fn    tp"]
    for r in rows:
        mark = "  <- best" if best is not None and r is best else ""
        lines.append(
            f"  {r['threshold']:.2f} {r['precision']:.4f} {r['recall']:.4f} {r['f1']:.4f} |"
            f" {r['tn']:5d} {r['fp']:5d} {r['fn']:5d} {r['tp']:5d}{mark}"
        )
    return "\n".join(lines)


def summary(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """precision, recall, F1, AUROC, AP and the confusion matrix at `threshold`."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=np.float64)
    row = threshold_rows(y, s, np.array([threshold]))[0]
    both = 0 < y.sum() < len(y)
    return {
        "threshold": float(threshold),
        "precision": row["precision"],
        "recall": row["recall"],
        "f1": row["f1"],
        "auroc": float(roc_auc_score(y, s)) if both else float("nan"),
        "ap": float(average_precision_score(y, s)) if both else float("nan"),
        "confusion": {k: row[k] for k in ("tn", "fp", "fn", "tp")},
        "n": int(len(y)),
        "n_positive": int(y.sum()),
    }


FINE_GRID = np.round(np.arange(1, 100) / 100, 2)


def best_f1(
    y_true: np.ndarray, scores: np.ndarray, grid: np.ndarray = FINE_GRID
) -> tuple[float, float]:
    """(best F1, its threshold) on `grid`; the first threshold on ties. For progress reports;
    `harmcache.train.threshold` makes the stored choice."""
    f1 = counts_at(y_true, scores, grid).fbeta(1.0)
    i = int(np.argmax(f1))
    return float(f1[i]), float(grid[i])
