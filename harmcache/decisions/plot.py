"""The threshold plot: the precision-recall curve, and precision, recall and the objective
against the threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harmcache.decisions.sweep import SweepResult


def plot(result: SweepResult, y_true: np.ndarray, scores: np.ndarray, path: str | Path) -> Path:
    """PNG: the precision-recall curve, and precision, recall and the objective against the
    threshold with the bootstrap band and the chosen threshold (and review band) marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.metrics import precision_recall_curve

    fig = Figure(figsize=(11, 4.5))
    FigureCanvasAgg(fig)
    ax_pr, ax_t = fig.subplots(1, 2)
    precision, recall, _ = precision_recall_curve(np.asarray(y_true).astype(int), scores)
    ax_pr.plot(recall, precision, color="tab:blue")
    ax_pr.scatter(
        [result.recall],
        [result.precision],
        color="tab:red",
        zorder=3,
        label=f"threshold {result.threshold:.3g}",
    )
    ax_pr.set(
        xlabel="recall",
        ylabel="precision",
        title="precision-recall (validation)",
        xlim=(0, 1.02),
        ylim=(0, 1.02),
    )
    ax_pr.legend(loc="lower left")
    t = result.thresholds
    ax_t.plot(t, result.curves["precision"], label="precision", color="tab:green")
    ax_t.plot(t, result.curves["recall"], label="recall", color="tab:orange")
    ax_t.plot(t, result.curves["objective"], label=result.objective, color="tab:blue")
    if result.bootstrap is not None:
        band = result.bootstrap["band"]
        label = f"{result.bootstrap['confidence']:.0%} bootstrap"
        ax_t.fill_between(
            band["thresholds"], band["low"], band["high"], color="tab:blue", alpha=0.2, label=label
        )
    ax_t.axvline(result.threshold, color="tab:red", linestyle="--", label="chosen")
    if result.review_band is not None:
        rb = result.review_band
        ax_t.axvspan(rb["t_low"], rb["t_high"], color="grey", alpha=0.2, label="review band")
    ax_t.set(
        xlabel="threshold", ylabel="value", title=f"objective {result.objective}", ylim=(0, 1.02)
    )
    ax_t.legend(loc="lower left", fontsize="small")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
