"""Calibration repairs planted mis-calibration on held-out data, survives a JSON round trip, and
agrees with scikit-learn's own calibrators and curves."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import expit, logit
from sklearn.calibration import calibration_curve
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss

from harmcache.calibration import (
    ScoreCalibrator,
    brier_score,
    expected_calibration_error,
    reliability_diagram,
)
from harmcache.errors import DataError, UsageError


def weighted_head(pos_weight: float = 6.0, seed: int = 0, truth: str = "logistic"):
    """A logistic head trained with a positive class weight (as pos_weight does), scored on
    separate validation and test splits; its scores overstate the harmful share. With a
    logistic truth the distortion is a pure logit shift; make_classification's clusters are not
    logistic, so only part of it is."""
    if truth == "logistic":
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(6000, 5))
        y = (rng.random(6000) < expit(X @ [1.5, -1.0, 0.8, 0.5, 0.0] - 2)).astype(int)
    else:
        X, y = make_classification(
            n_samples=6000, n_features=8, n_informative=4, weights=[0.85], random_state=seed
        )
    train, val, test = np.split(np.arange(len(y)), [2000, 4000])
    head = LogisticRegression(class_weight={0: 1, 1: pos_weight}, max_iter=1000)
    p = head.fit(X[train], y[train]).predict_proba(X)[:, 1]
    return (p[val], y[val]), (p[test], y[test])


def distorted_truth(seed: int = 0, n: int = 4000):
    """Scores that are a monotone distortion of true probabilities: s = sqrt(p)."""
    rng = np.random.default_rng(seed)
    p = rng.beta(1, 3, n)
    y = (rng.random(n) < p).astype(int)
    s = np.sqrt(p)
    return (s[: n // 2], y[: n // 2]), (s[n // 2 :], y[n // 2 :])


PLANTED = {
    "pos_weight-6": lambda: weighted_head(6.0),
    "pos_weight-3": lambda: weighted_head(3.0, seed=1),
    "sqrt-of-truth": distorted_truth,
}


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
@pytest.mark.parametrize("planted", PLANTED.values(), ids=PLANTED.keys())
def test_calibration_repairs_held_out_scores(method, planted):
    (s_val, y_val), (s_test, y_test) = planted()
    before = expected_calibration_error(y_test, s_test)
    calibrated = ScoreCalibrator(method).fit(s_val, y_val).transform(s_test)
    after = expected_calibration_error(y_test, calibrated)
    assert before > 0.1  # the planted mis-calibration is real
    assert after <= 0.05 and after < before
    assert brier_score(y_test, calibrated) < brier_score(y_test, s_test)


@pytest.mark.parametrize("seed", range(3))
def test_isotonic_repairs_what_a_sigmoid_cannot_fully(seed):
    (s_val, y_val), (s_test, y_test) = weighted_head(6.0, seed=seed, truth="clusters")
    before = expected_calibration_error(y_test, s_test)
    isotonic = ScoreCalibrator("isotonic").fit(s_val, y_val).transform(s_test)
    sigmoid = ScoreCalibrator("sigmoid").fit(s_val, y_val).transform(s_test)
    assert expected_calibration_error(y_test, isotonic) <= 0.05
    assert expected_calibration_error(y_test, sigmoid) < before


def test_sigmoid_undoes_a_class_weight_shift():
    """On the logit scale a class weight w is a shift of log w, which the intercept removes."""
    fits = [ScoreCalibrator("sigmoid").fit(*weighted_head(6.0, seed=s)[0]) for s in range(5)]
    assert np.mean([c.a_ for c in fits]) == pytest.approx(1.0, abs=0.1)
    assert np.mean([c.b_ for c in fits]) == pytest.approx(-np.log(6.0), abs=0.2)


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_json_round_trip_gives_identical_outputs(method, tmp_path):
    (s_val, y_val), (s_test, _) = weighted_head()
    cal = ScoreCalibrator(method).fit(s_val, y_val)
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(cal.to_json()))
    loaded = ScoreCalibrator.from_json(json.loads(path.read_text()))
    probe = np.r_[s_test, 0.0, 1.0, np.linspace(0, 1, 101)]
    assert loaded.method == method
    np.testing.assert_array_equal(loaded.transform(probe), cal.transform(probe))


def test_isotonic_agrees_with_sklearn_predict():
    (s_val, y_val), (s_test, _) = weighted_head()
    ours = ScoreCalibrator("isotonic").fit(s_val, y_val)
    theirs = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(s_val, y_val)
    probe = np.r_[s_test, 0.0, 1.0]
    np.testing.assert_allclose(ours.transform(probe), theirs.predict(probe), rtol=0, atol=1e-12)


def test_sigmoid_is_a_logistic_regression_on_logit_scores():
    (s_val, y_val), (s_test, _) = weighted_head()
    ours = ScoreCalibrator("sigmoid").fit(s_val, y_val)
    lr = LogisticRegression(C=np.inf, max_iter=1000).fit(logit(s_val)[:, None], y_val)
    np.testing.assert_allclose(
        ours.transform(s_test), lr.predict_proba(logit(s_test)[:, None])[:, 1], atol=1e-12
    )
    np.testing.assert_allclose(ours.transform([0.5]), expit(ours.b_))


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibration_keeps_the_ranking(method):
    (s_val, y_val), (s_test, _) = distorted_truth()
    out = ScoreCalibrator(method).fit(s_val, y_val).transform(np.sort(s_test))
    assert np.all(np.diff(out) >= 0) and out.min() >= 0 and out.max() <= 1


# --- the metrics ----------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("n_bins", [1, 5, 10, 15])
def test_ece_agrees_with_calibration_curve(strategy, n_bins):
    rng = np.random.default_rng(n_bins)
    p = rng.random(500)
    y = (rng.random(500) < p**1.5).astype(int)
    observed, predicted = calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
    edges = (
        np.linspace(0, 1, n_bins + 1)
        if strategy == "uniform"
        else np.percentile(p, np.linspace(0, 100, n_bins + 1))
    )
    counts = np.bincount(np.searchsorted(edges[1:-1], p), minlength=n_bins)
    weights = counts[counts > 0] / len(p)
    expected = float(np.sum(weights * np.abs(observed - predicted)))
    ece = expected_calibration_error(y, p, n_bins=n_bins, strategy=strategy)
    assert ece == pytest.approx(expected, abs=1e-12)


def test_ece_by_hand():
    y = np.array([0, 0, 1, 1])
    assert expected_calibration_error(y, [0.5, 0.5, 0.5, 0.5], n_bins=1) == 0.0
    assert expected_calibration_error(y, [0.0, 0.0, 1.0, 1.0]) == 0.0
    # two bins: [0.1, 0.2] hold outcomes 0, 0 -> gap 0.15; [0.9, 0.6] hold 1, 1 -> gap 0.25
    ece = expected_calibration_error(y, [0.1, 0.2, 0.9, 0.6], n_bins=2)
    assert ece == pytest.approx(0.5 * 0.15 + 0.5 * 0.25)


def test_brier_is_sklearns():
    rng = np.random.default_rng(0)
    p, y = rng.random(100), rng.integers(0, 2, 100)
    assert brier_score(y, p) == brier_score_loss(y, p)


def test_reliability_diagram_writes_a_png(tmp_path):
    (s_val, y_val), (s_test, y_test) = weighted_head()
    after = ScoreCalibrator("isotonic").fit(s_val, y_val).transform(s_test)
    path = reliability_diagram(y_test, s_test, after, tmp_path / "reliability.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    quantile = reliability_diagram(
        y_test, s_test, after, tmp_path / "q.png", n_bins=5, strategy="quantile"
    )
    assert quantile.stat().st_size > 1000


# --- errors ---------------------------------------------------------------------------------

S = np.linspace(0, 1, 20)
Y = np.r_[np.zeros(10, int), np.ones(10, int)]


@pytest.mark.parametrize(
    "scores, y, match",
    [
        (np.r_[S[:-1], np.nan], Y, "1 of 20 scores are NaN or infinite"),
        (S * 2, Y, r"scores must lie in \[0, 1\], got 0 to 2"),
        (S, Y[:-1], "19 labels but 20 scores"),
        (S, np.r_[Y[:-1], 3], "labels must be 0 or 1, got 3"),
        (S, np.ones(20, int), "labels hold one class only"),
        ([], [], "non-empty 1-D array"),
        (S[:, None], Y, "non-empty 1-D array"),
        (["a"] * 20, Y, "scores must be numbers"),
    ],
)
@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_fit_rejects_bad_data(method, scores, y, match):
    with pytest.raises(DataError, match=match):
        ScoreCalibrator(method).fit(scores, y)


def test_unknown_method_is_a_usage_error():
    with pytest.raises(UsageError, match="method must be one of isotonic, sigmoid, got 'platt'"):
        ScoreCalibrator("platt").fit(S, Y)


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_unfitted_calibrator_says_so(method):
    with pytest.raises(NotFittedError, match="call fit"):
        ScoreCalibrator(method).transform(S)
    with pytest.raises(NotFittedError, match="nothing to store"):
        ScoreCalibrator(method).to_json()


@pytest.mark.parametrize(
    "data, match",
    [
        ({"method": "isotonic"}, "expected format 'harmcache.calibration/1', got None"),
        ([1, 2], "got 'list'"),
        ({"format": "harmcache.calibration/1", "method": "beta"}, "unknown method 'beta'"),
        ({"format": "harmcache.calibration/1", "method": "sigmoid", "n_fit": 3}, "damaged"),
        (
            {"format": "harmcache.calibration/1", "method": "isotonic", "n_fit": 3, "x": [0, 1]},
            "isotonic calibrator is damaged",
        ),
        (
            {
                "format": "harmcache.calibration/1",
                "method": "isotonic",
                "n_fit": 3,
                "x": [0, 1],
                "y": [0],
            },
            "equal-length",
        ),
    ],
)
def test_from_json_rejects_damage(data, match):
    with pytest.raises(DataError, match=match):
        ScoreCalibrator.from_json(data)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_bins": 0}, "n_bins must be a positive integer, got 0"),
        ({"n_bins": 2.5}, "n_bins must be a positive integer"),
        ({"strategy": "kmeans"}, "strategy must be one of uniform, quantile, got 'kmeans'"),
    ],
)
def test_ece_option_errors(kwargs, match):
    with pytest.raises(UsageError, match=match):
        expected_calibration_error(Y, S, **kwargs)


def test_reliability_diagram_checks_lengths(tmp_path):
    with pytest.raises(DataError, match="20 labels but 19 calibrated probabilities"):
        reliability_diagram(Y, S, S[:-1], tmp_path / "x.png")
