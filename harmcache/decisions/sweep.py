"""Choosing the decision threshold on validation scores: 0.5 is rarely right (at 7 %
prevalence the best threshold was 0.12; docs/design-notes.md#sweeping-the-threshold).

Ties: among the thresholds that reach the best value, take the longest run of consecutive grid
points (the first such run if several are equally long) and return its middle point, so the
choice sits in the middle of a plateau instead of on its edge; the result says a tie happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harmcache.decisions.bootstrap import bootstrap_intervals
from harmcache.decisions.grid import DEFAULT_GRID, parse_grid
from harmcache.decisions.objective import Objective
from harmcache.decisions.rule import Counts, counts_at, flags
from harmcache.errors import DataError, UsageError


@dataclass
class SweepResult:
    """The chosen threshold and how it was chosen."""

    threshold: float
    objective: str
    score: float
    """The objective's value at the threshold (F-beta, or the metric maximised)."""
    precision: float
    recall: float
    f1: float
    confusion: dict[str, int]
    grid: str
    tie: dict | None
    n: int
    n_positive: int
    thresholds: np.ndarray = field(repr=False)
    curves: dict[str, np.ndarray] = field(repr=False)
    """precision, recall, f1 and the objective value at every grid threshold."""
    bootstrap: dict | None = None
    review_band: dict | None = None
    certificate: dict | None = None
    """With a confidence: `harmcache.decisions.certify.Certificate.to_json()` of the choice."""

    def to_json(self) -> dict:
        out = {
            "threshold": self.threshold,
            "objective": self.objective,
            "score": self.score,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "confusion": self.confusion,
            "grid": self.grid,
            "grid_points": int(len(self.thresholds)),
            "tie": self.tie,
            "n": self.n,
            "n_positive": self.n_positive,
            "bootstrap": None,
            "review_band": self.review_band,
        }
        if self.bootstrap is not None:
            out["bootstrap"] = {k: v for k, v in self.bootstrap.items() if k != "band"}
        if self.certificate is not None:
            out["certified"] = bool(self.certificate["certified"])
            out["certificate"] = self.certificate
        return out


def sweep(
    y_true,
    scores,
    objective: str | Objective = "f1",
    grid: str | None = None,
    *,
    bootstrap: int = 0,
    seed: int = 0,
    confidence: float = 0.95,
    review_band: tuple[float, float] | None = None,
) -> SweepResult:
    """Sweep `grid` (default DEFAULT_GRID), pick the threshold that maximises `objective`,
    optionally with bootstrap confidence intervals and a review band (`review_band_rule`)."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if len(y) != len(s) or len(y) == 0:
        raise DataError("no validation scores to sweep")
    if y.all() or not y.any():
        which = "harmful" if y.any() else "safe"
        raise DataError(f"the validation set is all {which}; a threshold needs both classes")
    obj = objective if isinstance(objective, Objective) else Objective.parse(objective)
    grid = DEFAULT_GRID if grid is None else grid
    thresholds = parse_grid(grid, s)
    counts = counts_at(y, s, thresholds)
    values = obj.values(counts)
    if not np.isfinite(values).any():
        raise DataError(_unmeetable(obj, counts, thresholds))
    best, tie = _pick(values)
    curves = {
        "precision": counts.precision,
        "recall": counts.recall,
        "f1": counts.fbeta(1.0),
        "objective": np.where(np.isfinite(values), values, np.nan),
    }
    result = SweepResult(
        threshold=float(thresholds[best]),
        objective=obj.text,
        score=float(values[best]),
        precision=float(curves["precision"][best]),
        recall=float(curves["recall"][best]),
        f1=float(curves["f1"][best]),
        confusion={k: int(getattr(counts, k)[best]) for k in ("tn", "fp", "fn", "tp")},
        grid=grid,
        tie=None
        if tie is None
        else {
            "count": tie[0],
            "low": float(thresholds[tie[1]]),
            "high": float(thresholds[tie[2]]),
        },
        n=int(len(y)),
        n_positive=int(y.sum()),
        thresholds=thresholds,
        curves=curves,
    )
    if bootstrap:
        result.bootstrap = bootstrap_intervals(
            y, s, thresholds, result.threshold, obj, bootstrap, seed, confidence
        )
    if review_band is not None:
        result.review_band = review_band_rule(y, s, thresholds, counts, *review_band)
    return result


def certified_sweep(
    y_true,
    scores,
    objective: str | Objective,
    confidence: float,
    grid: str | None = None,
) -> SweepResult:
    """The threshold `certify` certifies for `objective` (recall>=R or precision>=P, optionally
    with ',flagged<=F') at `confidence`, as a SweepResult carrying its certificate. `score` is
    the metric the choice favours (precision for a recall target, recall for a precision
    target) on these videos. Raises NotCertifiedError when nothing passes.

    `grid`: None for the certificate's own candidates (every distinct score for recall, the
    fixed grid 0.01..0.99 for precision), or start:stop:step / a comma list. 'scores' is refused
    for precision: the fallback procedure needs a grid fixed before the data is seen."""
    from harmcache.decisions.certify import NotCertifiedError, certify

    y = np.asarray(y_true).astype(np.int64)
    s = np.asarray(scores, dtype=np.float64)
    obj = objective if isinstance(objective, Objective) else Objective.parse(objective)
    obj = obj.certifiable()
    candidates = None
    if grid is not None and grid.strip().lower() == "scores":
        if obj.kind == "precision":
            raise UsageError(
                "--grid scores picks thresholds from the scores themselves; a certified "
                "precision threshold needs a grid fixed in advance (leave --grid out)"
            )
    elif grid is not None:
        candidates = parse_grid(grid, s)
    cert = certify(y, s, obj, confidence=confidence, grid=candidates)
    if not cert.certified:
        raise NotCertifiedError(cert)
    threshold = float(cert.threshold)
    shown = np.unique(np.append(parse_grid(DEFAULT_GRID, s), threshold))
    counts = counts_at(y.astype(bool), s, shown)
    i = int(np.searchsorted(shown, threshold))
    favoured = obj.metric
    curves = {
        "precision": counts.precision,
        "recall": counts.recall,
        "f1": counts.fbeta(1.0),
        "objective": counts.precision if favoured == "precision" else counts.recall,
    }
    return SweepResult(
        threshold=threshold,
        objective=cert.objective,
        score=float(curves[favoured][i]),
        precision=float(curves["precision"][i]),
        recall=float(curves["recall"][i]),
        f1=float(curves["f1"][i]),
        confusion={k: int(getattr(counts, k)[i]) for k in ("tn", "fp", "fn", "tp")},
        grid=grid or ("scores" if obj.kind == "recall" else DEFAULT_GRID),
        tie=None,
        n=int(len(y)),
        n_positive=int(y.sum()),
        thresholds=shown,
        curves=curves,
        certificate=cert.to_json(),
    )


def _pick(values: np.ndarray) -> tuple[int, tuple[int, int, int] | None]:
    """Index of the middle of the longest run of best values, and (count, first, last) of the
    tied indices when more than one threshold reaches the best value."""
    best = np.max(values)
    tied = np.flatnonzero(values >= best - 1e-12 * max(1.0, abs(best)))
    if len(tied) == 1:
        return int(tied[0]), None
    breaks = np.flatnonzero(np.diff(tied) > 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(tied) - 1]])
    longest = int(np.argmax(ends - starts))
    run = tied[starts[longest] : ends[longest] + 1]
    return int(run[(len(run) - 1) // 2]), (int(len(tied)), int(tied[0]), int(tied[-1]))


def _unmeetable(obj: Objective, counts: Counts, thresholds: np.ndarray) -> str:
    if obj.budget is not None:
        return (
            f"no threshold in the grid meets {obj.text} on validation; lower the bounds, use "
            "--grid scores, or improve the model"
        )
    metric = counts.recall if obj.kind == "recall" else counts.precision
    i = int(np.argmax(metric))
    return (
        f"no threshold in the grid meets {obj.kind} >= {obj.primary.level:g} on validation: the "
        f"best {obj.kind} is {metric[i]:.4f} (at {thresholds[i]:g}); lower the bound, use "
        "--grid scores, or improve the model"
    )


def review_band_rule(
    y: np.ndarray,
    s: np.ndarray,
    thresholds: np.ndarray,
    counts: Counts,
    precision_high: float,
    recall_low: float,
) -> dict:
    """Block at or above t_high, send [t_low, t_high) to human review, pass the rest.

    t_high is the smallest grid threshold whose validation precision is >= `precision_high`
    (automatic blocks are that precise, and as many as possible). t_low is the largest grid
    threshold whose recall is >= `recall_low` (blocked plus reviewed videos catch that share
    of harmful ones, with as little review as possible). If t_low >= t_high no review is needed
    and t_low = t_high."""
    eps = 1e-12
    precise = np.flatnonzero((counts.precision >= precision_high - eps) & (counts.tp > 0))
    if not len(precise):
        raise DataError(
            f"review band: no threshold reaches precision >= {precision_high:g} on validation "
            f"(best {counts.precision.max():.4f}); lower the precision bound"
        )
    recalled = np.flatnonzero(counts.recall >= recall_low - eps)
    if not len(recalled):
        raise DataError(
            f"review band: no threshold reaches recall >= {recall_low:g} on validation "
            f"(best {counts.recall.max():.4f}); lower the recall bound or extend the grid"
        )
    hi, lo = int(precise[0]), int(recalled[-1])
    lo = min(lo, hi)
    t_high, t_low = float(thresholds[hi]), float(thresholds[lo])
    blocked = flags(s, t_high)
    return {
        "rule": "t_high: smallest threshold with precision >= P; t_low: largest with recall >= R",
        "precision_high": precision_high,
        "recall_low": recall_low,
        "t_low": t_low,
        "t_high": t_high,
        "block_precision": float(counts.precision[hi]),
        "block_recall": float(counts.recall[hi]),
        "block_plus_review_recall": float(counts.recall[lo]),
        "share_blocked": float(np.mean(blocked)),
        "share_review": float(np.mean(flags(s, t_low) & ~blocked)),
    }
