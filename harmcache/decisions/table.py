"""The threshold table: precision, recall, F1 and the confusion matrix at a few thresholds, as
printed per epoch and by `sweep-threshold`."""

from __future__ import annotations

import numpy as np

from harmcache.decisions.rule import counts_at

TABLE_THRESHOLDS = np.round(np.arange(0.30, 0.7001, 0.05), 2)
"""The per-epoch validation table (docs/design-notes.md#per-epoch-threshold-table): 0.30 to 0.70 in
steps of 0.05."""


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
