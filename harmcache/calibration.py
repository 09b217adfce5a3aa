"""Turning head scores into probabilities, with scikit-learn's calibrators.

Class weighting (pos_weight w) trains a head whose logit is the true log-odds plus about log w,
so at 7 % prevalence a score of 0.5 is far from a 50 % chance. Calibration fits a monotone map
from scores to probabilities on held-out labelled scores; it changes no ranking, so it moves
no precision-recall trade-off, only what a score means.

- isotonic: `sklearn.isotonic.IsotonicRegression(out_of_bounds="clip")`, the calibrator
  `CalibratedClassifierCV` uses. It is stored as its fitted thresholds; applying it is linear
  interpolation between them, clipped at both ends, which is what `IsotonicRegression.predict`
  computes. Needs a few hundred held-out videos; it is a step function on fewer.
- sigmoid: Platt scaling on the logit of the score, fitted by
  `sklearn.linear_model.LogisticRegression` without penalty on the single feature logit(s):
  p = expit(a * logit(s) + b). On the logit scale a class weight is an exact shift, which b
  undoes, and a rescales over- or under-confident scores. scikit-learn's own sigmoid calibrator
  is private (`sklearn.calibration._SigmoidCalibration`), reached only through
  `CalibratedClassifierCV` around a wrapped estimator, and it fits the raw probability rather
  than its logit. Unlike Platt's original it uses hard 0/1 targets (no prior smoothing).

A calibrator is stored as JSON (`to_json`/`from_json`), never pickled, and gives the same
outputs after the round trip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import expit, logit
from sklearn.exceptions import NotFittedError

from harmcache.errors import DataError, UsageError

METHODS = ("isotonic", "sigmoid")
STRATEGIES = ("uniform", "quantile")
FORMAT = "harmcache.calibration/1"
LOGIT_EPS = 1e-6
"""Scores are clipped to [eps, 1 - eps] before the logit, so 0 and 1 stay finite."""


class ScoreCalibrator:
    """Monotone map from head scores in [0, 1] to calibrated probabilities.

    method: "isotonic" (`IsotonicRegression`) or "sigmoid" (Platt scaling on logit scores).
    """

    def __init__(self, method: str = "isotonic"):
        self.method = method

    def fit(self, scores, y) -> ScoreCalibrator:
        """Fit on held-out scores and their 0/1 labels (never the scores it will be judged on)."""
        _check_method(self.method)
        s = _probabilities(scores, "scores")
        y = _labels(y, len(s))
        if self.method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            fitted = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(s, y)
            self.x_ = np.asarray(fitted.X_thresholds_, dtype=float)
            self.y_ = np.asarray(fitted.y_thresholds_, dtype=float)
        else:
            from sklearn.linear_model import LogisticRegression

            z = _logit(s)[:, None]
            fitted = LogisticRegression(C=np.inf, max_iter=1000).fit(z, y)
            self.a_ = float(fitted.coef_[0, 0])
            self.b_ = float(fitted.intercept_[0])
        self.n_fit_ = len(s)
        return self

    def transform(self, scores) -> np.ndarray:
        """Calibrated probabilities for `scores`."""
        s = _probabilities(scores, "scores")
        if self.method == "isotonic":
            if not hasattr(self, "x_"):
                raise NotFittedError("ScoreCalibrator is not fitted: call fit(scores, y) first")
            return np.interp(s, self.x_, self.y_)
        if not hasattr(self, "a_"):
            raise NotFittedError("ScoreCalibrator is not fitted: call fit(scores, y) first")
        return expit(self.a_ * _logit(s) + self.b_)

    def to_json(self) -> dict:
        """Everything `transform` needs, as plain JSON values."""
        if not hasattr(self, "n_fit_"):
            raise NotFittedError("ScoreCalibrator is not fitted: nothing to store")
        out: dict = {"format": FORMAT, "method": self.method, "n_fit": self.n_fit_}
        if self.method == "isotonic":
            out["x"] = self.x_.tolist()
            out["y"] = self.y_.tolist()
        else:
            out.update(a=self.a_, b=self.b_, input="logit", logit_eps=LOGIT_EPS)
        return out

    @classmethod
    def from_json(cls, data: dict) -> ScoreCalibrator:
        """The calibrator `to_json` stored."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise DataError(f"not a stored calibrator: expected format {FORMAT!r}, got {found!r}")
        method = data.get("method")
        if method not in METHODS:
            raise DataError(f"stored calibrator has unknown method {method!r}")
        cal = cls(method)
        try:
            cal.n_fit_ = int(data["n_fit"])
            if method == "isotonic":
                cal.x_ = np.asarray(data["x"], dtype=float)
                cal.y_ = np.asarray(data["y"], dtype=float)
                if cal.x_.ndim != 1 or cal.x_.shape != cal.y_.shape or not len(cal.x_):
                    raise ValueError("x and y must be equal-length non-empty lists")
            else:
                if data.get("logit_eps", LOGIT_EPS) != LOGIT_EPS:
                    raise ValueError(f"logit_eps {data['logit_eps']} is not {LOGIT_EPS}")
                cal.a_, cal.b_ = float(data["a"]), float(data["b"])
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"stored {method} calibrator is damaged: {e}") from e
        return cal

    def __repr__(self) -> str:
        return f"ScoreCalibrator(method={self.method!r})"


def brier_score(y_true, p) -> float:
    """Mean squared gap between probabilities and 0/1 outcomes (`sklearn.metrics`)."""
    from sklearn.metrics import brier_score_loss

    p = _probabilities(p, "probabilities")
    y = _labels(y_true, len(p), both_classes=False)
    return float(brier_score_loss(y, p))


def expected_calibration_error(y_true, p, n_bins: int = 10, strategy: str = "uniform") -> float:
    """Sum over bins of (share of videos in the bin) x |observed rate - mean probability|.

    Bins as `sklearn.calibration.calibration_curve` draws them: `uniform` splits [0, 1] into
    n_bins equal widths, `quantile` into bins holding equal numbers of videos.
    """
    p = _probabilities(p, "probabilities")
    y = _labels(y_true, len(p), both_classes=False)
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise UsageError(f"n_bins must be a positive integer, got {n_bins!r}")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        edges = np.percentile(p, np.linspace(0, 100, n_bins + 1))
    else:
        raise UsageError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    bins = np.searchsorted(edges[1:-1], p)
    total = np.bincount(bins, minlength=n_bins)
    gap = np.abs(
        np.bincount(bins, weights=y, minlength=n_bins)
        - np.bincount(bins, weights=p, minlength=n_bins)
    )
    return float(gap.sum() / total.sum())


def reliability_diagram(
    y_true, p_before, p_after, path: str | Path, *, n_bins: int = 10, strategy: str = "uniform"
) -> Path:
    """PNG: observed rate against mean probability per bin, before and after calibration, with
    ECE and Brier in the legend, and how the probabilities spread over [0, 1] below."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from sklearn.calibration import calibration_curve

    before = _probabilities(p_before, "p_before")
    after = _probabilities(p_after, "p_after")
    y = _labels(y_true, len(before))
    if len(after) != len(y):
        raise DataError(f"{len(y)} labels but {len(after)} calibrated probabilities")

    fig = Figure(figsize=(5.5, 6.5))
    FigureCanvasAgg(fig)
    ax, ax_hist = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    for name, p, colour in (("before", before, "tab:red"), ("after", after, "tab:blue")):
        observed, predicted = calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
        ece = expected_calibration_error(y, p, n_bins=n_bins, strategy=strategy)
        label = f"{name}: ECE {ece:.3f}, Brier {brier_score(y, p):.3f}"
        ax.plot(predicted, observed, marker="o", color=colour, label=label)
        ax_hist.hist(p, bins=n_bins, range=(0, 1), histtype="step", color=colour)
    ax.set(ylabel="observed share harmful", xlim=(0, 1), ylim=(0, 1.02))
    ax.set_title(f"reliability ({len(y)} videos, {strategy} bins)")
    ax.legend(loc="upper left", fontsize="small")
    ax_hist.set(xlabel="probability", ylabel="videos")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100, format="png")
    return path


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise UsageError(f"calibration method must be one of {', '.join(METHODS)}, got {method!r}")


def _probabilities(x, what: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as e:
        raise DataError(f"{what} must be numbers: {e}") from e
    if a.ndim != 1 or not len(a):
        raise DataError(f"{what} must be a non-empty 1-D array, got shape {a.shape}")
    bad = int((~np.isfinite(a)).sum())
    if bad:
        raise DataError(f"{bad} of {len(a)} {what} are NaN or infinite")
    if a.min() < 0 or a.max() > 1:
        raise DataError(f"{what} must lie in [0, 1], got {a.min():.3g} to {a.max():.3g}")
    return a


def _labels(y, n: int, both_classes: bool = True) -> np.ndarray:
    a = np.asarray(y)
    if a.ndim != 1:
        raise DataError(f"labels must be 1-D, got shape {a.shape}")
    if len(a) != n:
        raise DataError(f"{len(a)} labels but {n} scores")
    values = set(np.unique(a).tolist())
    if not values <= {0, 1}:
        raise DataError(
            f"labels must be 0 or 1, got {', '.join(sorted(map(str, values - {0, 1})))}"
        )
    if both_classes and len(values) < 2:
        raise DataError(f"labels hold one class only ({n} videos); calibration needs both")
    return a.astype(float)


def _logit(s: np.ndarray) -> np.ndarray:
    return logit(np.clip(s, LOGIT_EPS, 1 - LOGIT_EPS))
