"""The threshold sweep agrees with brute force and with scikit-learn, and refuses what it must."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import f1_score, fbeta_score, precision_score, recall_score
from sklearn.model_selection import TunedThresholdClassifierCV

from harmcache.decisions.grid import parse_grid
from harmcache.decisions.objective import Objective
from harmcache.decisions.plot import plot
from harmcache.decisions.sweep import sweep
from harmcache.errors import DataError, UsageError

GRID = np.round(np.arange(1, 100) / 100, 2)


def random_scores(seed: int, n: int = 300, prevalence: float = 0.3):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(int)
    y[:2] = [0, 1]
    s = np.clip(rng.normal(0.35 + 0.25 * y, 0.2), 0, 1)
    if seed % 2:  # coarse scores: many ties between videos
        s = np.round(s, 1)
    return y, s


class GivenScores(ClassifierMixin, BaseEstimator):
    """A fitted 'classifier' whose positive-class probability is the single input column."""

    def fit(self, X, y):
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        p = np.asarray(X)[:, 0]
        return np.column_stack([1 - p, p])


def sklearn_tuned(s: np.ndarray, y: np.ndarray, way: str) -> TunedThresholdClassifierCV:
    """TunedThresholdClassifierCV scoring exactly the given scores on our grid. scikit-learn
    1.9 offers two ways: cv="prefit", or a FrozenEstimator with one split that is all data."""
    if way == "prefit":
        estimator, cv = GivenScores().fit(None, None), "prefit"
    else:
        everything = np.arange(len(y))
        estimator, cv = FrozenEstimator(GivenScores().fit(None, None)), [(everything, everything)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TunedThresholdClassifierCV(
            estimator, scoring="f1", thresholds=GRID, cv=cv, refit=False
        ).fit(s[:, None], y)


@pytest.mark.parametrize("way", ["prefit", "frozen"])
@pytest.mark.parametrize("seed", range(6))
def test_f1_matches_brute_force_and_sklearn(seed, way):
    y, s = random_scores(seed)
    result = sweep(y, s, "f1")
    brute = np.array([f1_score(y, s >= t, zero_division=0) for t in GRID])
    np.testing.assert_allclose(result.curves["f1"], brute, rtol=0, atol=1e-12)
    assert result.score == pytest.approx(brute.max(), abs=1e-12)
    assert f1_score(y, s >= result.threshold) == pytest.approx(brute.max(), abs=1e-12)

    tuned = sklearn_tuned(s, y, way)
    assert tuned.best_score_ == pytest.approx(result.score, abs=1e-12)
    # Both thresholds reach the best F1; ours is the middle of the plateau, theirs its start.
    assert f1_score(y, s >= tuned.best_threshold_) == pytest.approx(result.score, abs=1e-12)
    if result.tie is None:
        assert tuned.best_threshold_ == pytest.approx(result.threshold)
    else:
        assert result.tie["low"] == pytest.approx(tuned.best_threshold_)


@pytest.mark.parametrize("seed", range(3))
def test_every_distinct_score_grid_matches_brute_force(seed):
    y, s = random_scores(seed, n=120)
    result = sweep(y, s, "f1", "scores")
    candidates = np.unique(s)
    brute = np.array([f1_score(y, s >= t, zero_division=0) for t in candidates])
    np.testing.assert_allclose(result.curves["f1"], brute, atol=1e-12)
    assert result.score == pytest.approx(brute.max(), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("beta", [0.5, 2.0])
def test_fbeta_matches_sklearn(seed, beta):
    y, s = random_scores(seed)
    result = sweep(y, s, f"f{beta:g}")
    brute = np.array([fbeta_score(y, s >= t, beta=beta, zero_division=0) for t in GRID])
    np.testing.assert_allclose(result.curves["objective"], brute, atol=1e-12)
    assert result.score == pytest.approx(brute.max(), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_constrained_objectives_match_brute_force(seed):
    y, s = random_scores(seed)
    prec = np.array([precision_score(y, s >= t, zero_division=0) for t in GRID])
    rec = np.array([recall_score(y, s >= t, zero_division=0) for t in GRID])

    result = sweep(y, s, "recall>=0.9")
    assert result.recall >= 0.9
    assert result.score == pytest.approx(prec[rec >= 0.9].max(), abs=1e-12)

    result = sweep(y, s, "precision>=0.6")
    assert result.precision >= 0.6
    assert result.score == pytest.approx(rec[prec >= 0.6].max(), abs=1e-12)


def test_tie_takes_the_middle_of_the_plateau_and_says_so():
    # Perfectly separated: every threshold in (0.2, 0.8] gives F1 = 1.
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.15, 0.2, 0.8, 0.85, 0.9])
    result = sweep(y, s, "f1")
    assert result.score == 1.0
    assert result.tie == {"count": 60, "low": 0.21, "high": 0.8}
    assert result.threshold == pytest.approx(0.5)


def test_no_tie_is_reported_as_none():
    y = np.array([0, 1, 0, 1])
    s = np.array([0.1, 0.505, 0.5, 0.9])
    assert sweep(y, s, "f1", "0.5,0.51,0.6").tie is None


@pytest.mark.parametrize(
    "objective, message",
    [
        ("precision>=1.0", r"no threshold in the grid meets precision >= 1"),
        ("recall>=1.0", r"no threshold in the grid meets recall >= 1"),
    ],
)
def test_unmeetable_objective_is_a_data_error(objective, message):
    y = np.array([0, 1, 0, 1, 1, 0])
    s = np.array([0.995, 0.3, 0.2, 0.995, 0.001, 0.1])  # a negative ties the top positive
    with pytest.raises(DataError, match=message):
        sweep(y, s, objective)


@pytest.mark.parametrize("bad", ["accuracy", "f0", "recall>=1.5", "precision>0.5"])
def test_unknown_objective(bad):
    with pytest.raises(UsageError, match=r"objective"):
        Objective.parse(bad)


def test_one_class_is_refused():
    with pytest.raises(DataError, match=r"all safe; a threshold needs both classes"):
        sweep(np.zeros(5), np.linspace(0, 1, 5))


def test_grid_parsing():
    assert len(parse_grid("0.01:0.99:0.01", [])) == 99
    steps = parse_grid("0.3:0.7:0.05", [])
    assert steps.tolist() == [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]  # exact decimals
    assert parse_grid("scores", [0.2, 0.1, 0.2]).tolist() == [0.1, 0.2]
    with pytest.raises(UsageError, match=r"--grid"):
        parse_grid("0.9:0.1:0.1", [])


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    y, s = random_scores(0, n=2000)
    a = sweep(y, s, "f1", bootstrap=300, seed=1)
    b = sweep(y, s, "f1", bootstrap=300, seed=1)
    assert a.bootstrap["ci"] == b.bootstrap["ci"]
    lo, hi = a.bootstrap["ci"]["f1"]
    assert lo <= a.f1 <= hi and hi - lo < 0.1
    t_lo, t_hi = a.bootstrap["ci"]["threshold"]
    assert t_lo <= a.threshold <= t_hi


def test_multinomial_bootstrap_matches_resampling_indices():
    """The cell-count shortcut has the spread of resampling the videos themselves."""
    y, s = random_scores(2, n=400)
    fast = sweep(y, s, "f1", bootstrap=2000, seed=0).bootstrap["ci"]["f1"]
    rng = np.random.default_rng(0)
    t = sweep(y, s, "f1").threshold
    slow = []
    for _ in range(2000):
        i = rng.integers(0, len(y), len(y))
        slow.append(f1_score(y[i], s[i] >= t, zero_division=0))
    np.testing.assert_allclose(fast, np.percentile(slow, [2.5, 97.5]), atol=0.02)


def test_review_band():
    y, s = random_scores(0, n=1000)
    result = sweep(y, s, "f1", review_band=(0.9, 0.95))
    rb = result.review_band
    assert rb["t_low"] <= rb["t_high"]
    assert precision_score(y, s >= rb["t_high"]) >= 0.9
    assert recall_score(y, s >= rb["t_low"]) >= 0.95
    # t_low is the largest such threshold: one grid step up loses the recall bound.
    assert recall_score(y, s >= rb["t_low"] + 0.01) < 0.95
    with pytest.raises(DataError, match=r"review band: no threshold reaches precision >= 1"):
        sweep(np.array([0, 1, 1]), np.array([0.9, 0.9, 0.1]), review_band=(1.0, 0.5))


def test_plot_writes_a_png(tmp_path):
    y, s = random_scores(0)
    result = sweep(y, s, "f2", bootstrap=100, review_band=(0.8, 0.9))
    path = plot(result, y, s, tmp_path / "t.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
