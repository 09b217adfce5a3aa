"""A sweep's result in words: the lines `harmcache sweep-threshold` prints."""

from __future__ import annotations

import math

import numpy as np

from harmcache.decisions.objective import Objective
from harmcache.decisions.operating_point import bounds_line
from harmcache.decisions.sweep import SweepResult
from harmcache.decisions.table import format_rows, threshold_rows

SHOWN_THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)
"""The table's rows, with the chosen threshold added."""


def sweep_lines(result: SweepResult, y: np.ndarray, scores: np.ndarray, where: str) -> list[str]:
    """The table around the choice, the choice, and its tie, bootstrap and review band."""
    rows = threshold_rows(y, scores, np.unique(np.append(SHOWN_THRESHOLDS, result.threshold)))
    chosen = next(r for r in rows if r["threshold"] == result.threshold)
    lines = [
        f"{where}: {result.n} videos, {result.n_positive} harmful; grid {result.grid}",
        format_rows(rows, chosen),
    ]
    if result.certificate is not None:
        lines.append(describe_certificate(result.certificate, result.threshold))
    else:
        lines.append(
            f"chosen threshold {result.threshold:.4g} for {result.objective}: {result.score:.4f} "
            f"(precision {result.precision:.4f}, recall {result.recall:.4f}, F1 {result.f1:.4f})"
        )
    if result.tie:
        lines.append(
            f"tie: {result.tie['count']} thresholds from {result.tie['low']:.4g} to "
            f"{result.tie['high']:.4g} reach the best value; took the middle of the longest run"
        )
    if result.bootstrap:
        ci = result.bootstrap["ci"]
        lines.append(
            f"{result.bootstrap['confidence']:.0%} bootstrap ({result.bootstrap['replicates']}): "
            f"{result.objective} {_ci(ci['score'])}, precision {_ci(ci['precision'])}, "
            f"recall {_ci(ci['recall'])}, threshold {_ci(ci['threshold'])}"
        )
    if result.review_band:
        rb = result.review_band
        lines.append(
            f"review band: block >= {rb['t_high']:.4g} (precision {rb['block_precision']:.4f}, "
            f"{rb['share_blocked']:.1%} of videos), review [{rb['t_low']:.4g}, {rb['t_high']:.4g}) "
            f"({rb['share_review']:.1%}); recall with review {rb['block_plus_review_recall']:.4f}"
        )
    return lines


def describe_certificate(cert: dict, threshold: float) -> str:
    """Two lines: the certified threshold with its bound, and what it does on these videos."""
    metric = Objective.parse(cert["objective"]).kind
    empirical = cert["empirical"]
    return (
        f"certified threshold {threshold:.4g} for {cert['objective']} at "
        f"{cert['confidence']:.0%} confidence ({cert['method']}, {cert['n_positive']} harmful and "
        f"{cert['n_negative']} safe videos): {bounds_line(cert['bounds'])} on new videos like "
        f"these\n  on these videos: recall {empirical['recall']:.4f}, precision "
        f"{fmt(empirical['precision'])}, flagged {empirical['flagged']:.1%}; the {metric} bound "
        "is what the guarantee promises, not these"
    )


def not_certified_json(cert) -> dict:
    """The --json line of a refusal."""
    return {
        "threshold": None,
        "objective": cert.objective,
        "score": None,
        "certified": False,
        "needed_positives": cert.needed_positives,
        "certificate": cert.to_json(),
    }


def fmt(x: float | None) -> str:
    """A metric to four places, or n/a when undefined (AUROC on one class is NaN or None)."""
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.4f}"


def _ci(ci: list[float] | None) -> str:
    return f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "[n/a]"
