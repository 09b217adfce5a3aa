"""Choosing the decision threshold from validation scores (reports 001 §3 and 002 §4: 0.5 is
rarely right; at 7 % prevalence the best threshold was 0.12).

A video is called harmful when score >= threshold, as in scikit-learn. Objectives:

    f1, f<beta>       maximise F-beta (f2 favours recall, f0.5 precision)
    recall>=R         maximise precision among thresholds with recall >= R
    precision>=P      maximise recall among thresholds with precision >= P

Ties: among the thresholds that reach the best value, take the longest run of consecutive grid
points (the first such run if several are equally long) and return its middle point, so the
choice sits in the middle of a plateau instead of on its edge; the result says a tie happened.

Confusion counts at every threshold come from one sort and a binary search per threshold.
Bootstrap replicates never resample the scores themselves: resampling n videos with
replacement puts a multinomial number of draws in each (class, threshold bin) cell, with
probability cell size / n, so a replicate is one multinomial draw over 2 × (K + 1) cells.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harmcache.errors import DataError, UsageError
from harmcache.metrics import Counts, counts_at

DEFAULT_GRID = "0.01:0.99:0.01"
MAX_BOOTSTRAP_THRESHOLDS = 2000
"""With --grid scores (up to one threshold per video), bootstrap on ~1,000 score quantiles."""


@dataclass(frozen=True)
class Objective:
    """What the sweep maximises: 'f1', 'f2', 'f0.5', 'recall>=0.9' or 'precision>=0.95'."""

    text: str
    kind: str
    """fbeta | recall | precision (the constrained metric)"""
    beta: float = 1.0
    bound: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Objective:
        t = text.replace(" ", "").lower()
        if m := re.fullmatch(r"f(\d+(?:\.\d+)?|\.\d+)", t):
            beta = float(m.group(1))
            if beta <= 0:
                raise UsageError(f"objective {text!r}: beta must be positive")
            return cls(t, "fbeta", beta=beta)
        if m := re.fullmatch(r"(recall|precision)>=(\d*\.?\d+)", t):
            bound = float(m.group(2))
            if not 0 < bound <= 1:
                raise UsageError(f"objective {text!r}: the bound must be in (0, 1]")
            return cls(t, m.group(1), bound=bound)
        raise UsageError(
            f"unknown objective {text!r}; use f1, f<beta> (f2, f0.5), recall>=R or precision>=P"
        )

    @property
    def metric(self) -> str:
        """The name of the value maximised."""
        if self.kind == "fbeta":
            return "f1" if self.beta == 1 else f"f{self.beta:g}"
        return "precision" if self.kind == "recall" else "recall"

    def values(self, c: Counts) -> np.ndarray:
        """The value maximised at each threshold; -inf where the constraint fails."""
        if self.kind == "fbeta":
            return c.fbeta(self.beta)
        eps = 1e-12  # recall 9/10 must count as >= 0.9
        if self.kind == "recall":
            return np.where(c.recall >= self.bound - eps, c.precision, -np.inf)
        return np.where(c.precision >= self.bound - eps, c.recall, -np.inf)


def parse_grid(text: str, scores: np.ndarray) -> np.ndarray:
    """'start:stop:step' (inclusive), a comma list, or 'scores' (every distinct score)."""
    t = text.strip().lower()
    if t == "scores":
        return np.unique(np.asarray(scores, dtype=np.float64))
    try:
        if ":" in t:
            start, stop, step = (float(x) for x in t.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            decimals = max(len(p.split(".")[1]) if "." in p else 0 for p in t.split(":"))
            grid = np.round(np.arange(start, stop + step / 2, step), decimals + 2)
        else:
            grid = np.unique([float(x) for x in t.split(",")])
    except ValueError:
        raise UsageError(
            f"--grid {text!r}: use start:stop:step (e.g. {DEFAULT_GRID}), a comma list, or scores"
        ) from None
    return np.unique(grid)


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
    """With a confidence: `harmcache.guarantee.Certificate.to_json()` of the chosen threshold."""

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
    y_true: np.ndarray,
    scores: np.ndarray,
    objective: str = "f1",
    grid: str = DEFAULT_GRID,
    *,
    bootstrap: int = 0,
    seed: int = 0,
    confidence: float = 0.95,
    review_band: tuple[float, float] | None = None,
) -> SweepResult:
    """Sweep `grid`, pick the threshold that maximises `objective`, optionally with bootstrap
    confidence intervals and a review band (see `review_band_rule`)."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if len(y) != len(s) or len(y) == 0:
        raise DataError("no validation scores to sweep")
    if y.all() or not y.any():
        which = "harmful" if y.any() else "safe"
        raise DataError(f"the validation set is all {which}; a threshold needs both classes")
    obj = Objective.parse(objective)
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
        result.bootstrap = _bootstrap(
            y, s, thresholds, result.threshold, obj, bootstrap, seed, confidence
        )
    if review_band is not None:
        result.review_band = review_band_rule(y, s, thresholds, counts, *review_band)
    return result


def certified_sweep(
    y_true: np.ndarray,
    scores: np.ndarray,
    objective: str,
    confidence: float,
    grid: str | None = None,
) -> SweepResult:
    """The threshold `harmcache.guarantee.certify` certifies for `objective` (recall>=R or
    precision>=P, optionally with ',flagged<=F') at `confidence`, as a SweepResult carrying its
    certificate. `score` is the metric the choice favours (precision for a recall target, recall
    for a precision target) on these videos. Raises NotCertifiedError when nothing passes.

    `grid`: None for the certificate's own candidates (every distinct score for recall, the
    fixed grid 0.01..0.99 for precision), or start:stop:step / a comma list. 'scores' is refused
    for precision: the fallback procedure needs a grid fixed before the data is seen."""
    from harmcache.guarantee import NotCertifiedError, certify
    from harmcache.guarantee import Objective as Certified

    y = np.asarray(y_true).astype(np.int64)
    s = np.asarray(scores, dtype=np.float64)
    obj = Certified.parse(objective)
    candidates = None
    if grid is not None and grid.strip().lower() == "scores":
        if obj.primary.metric == "precision":
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
    favoured = "precision" if obj.primary.metric == "recall" else "recall"
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
        grid=grid or ("scores" if obj.primary.metric == "recall" else DEFAULT_GRID),
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
    metric = counts.recall if obj.kind == "recall" else counts.precision
    i = int(np.argmax(metric))
    return (
        f"no threshold in the grid meets {obj.kind} >= {obj.bound:g} on validation: the best "
        f"{obj.kind} is {metric[i]:.4f} (at {thresholds[i]:g}); lower the bound, use "
        "--grid scores, or improve the model"
    )


def _bootstrap(
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
    # Score s is called harmful at the first `bins` thresholds (those <= s).
    bins = np.searchsorted(grid, s, side="right")
    cells = np.concatenate(
        [np.bincount(bins[y], minlength=k + 1), np.bincount(bins[~y], minlength=k + 1)]
    )
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(s), cells / cells.sum(), size=replicates)
    pos, neg = draws[:, : k + 1], draws[:, k + 1 :]
    # Positives called harmful at threshold j: those in bins j+1..k.
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
    return {
        "rule": "t_high: smallest threshold with precision >= P; t_low: largest with recall >= R",
        "precision_high": precision_high,
        "recall_low": recall_low,
        "t_low": t_low,
        "t_high": t_high,
        "block_precision": float(counts.precision[hi]),
        "block_recall": float(counts.recall[hi]),
        "block_plus_review_recall": float(counts.recall[lo]),
        "share_blocked": float(np.mean(s >= t_high)),
        "share_review": float(np.mean((s >= t_low) & (s < t_high))),
    }


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
