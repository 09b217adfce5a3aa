"""Certified thresholds keep their promise on the population, are not vacuous, and refuse what
they must: simulation against known score distributions, brute force, and the error paths."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import optimize, stats

from harmcache.decisions.certify import certify
from harmcache.decisions.inputs import DEFAULT_PRECISION_GRID
from harmcache.decisions.objective import Objective, Target
from harmcache.errors import DataError, UsageError

DRAWS = 1000


class World:
    """Scores drawn from known class distributions, so every population metric is exact."""

    def __init__(self, pos=(4, 2), neg=(2, 4), prevalence=0.3):
        self.pos, self.neg, self.prevalence = stats.beta(*pos), stats.beta(*neg), prevalence

    def draw(self, n: int, draws: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        y = (rng.random((draws, n)) < self.prevalence).astype(int)
        s_pos = self.pos.rvs((draws, n), random_state=rng)
        s_neg = self.neg.rvs((draws, n), random_state=rng)
        return y, np.where(y == 1, s_pos, s_neg)

    def recall(self, t):
        return self.pos.sf(t)

    def flagged(self, t):
        return self.prevalence * self.pos.sf(t) + (1 - self.prevalence) * self.neg.sf(t)

    def precision(self, t):
        return self.prevalence * self.pos.sf(t) / self.flagged(t)

    def oracle_recall_threshold(self, r: float) -> float:
        return float(self.pos.isf(r))

    def oracle_precision_threshold(self, p: float) -> float:
        return optimize.brentq(lambda t: self.precision(t) - p, 1e-3, 1 - 1e-3)


def certify_all(y, s, objective, confidence, **kw) -> np.ndarray:
    """Certified threshold per draw, NaN where nothing was certified."""
    out = np.full(len(y), np.nan)
    for i in range(len(y)):
        c = certify(y[i], s[i], objective, confidence=confidence, **kw)
        if c.certified:
            out[i] = c.threshold
    return out


# --- simulation: the promise holds on the population and is not vacuous ------------------------


@pytest.mark.parametrize("target, confidence", [(0.9, 0.9), (0.95, 0.9)])
def test_recall_guarantee_holds_and_is_tight(target, confidence):
    world = World(prevalence=0.4)  # about 80 positives in 200 videos
    y, s = world.draw(n=200, draws=DRAWS, seed=1)
    t = certify_all(y, s, f"recall>={target}", confidence)
    assert np.isfinite(t).all()  # 80 positives always suffice for recall
    recall = world.recall(t)
    assert np.mean(recall >= target) >= confidence
    oracle = world.recall(world.oracle_recall_threshold(target))  # == target
    assert np.mean(recall) - oracle <= 0.05


@pytest.mark.parametrize("target", [0.8, 0.9])
@pytest.mark.parametrize("confidence", [0.8, 0.95])
def test_recall_coverage_at_other_levels(target, confidence):
    y, s = World().draw(n=200, draws=DRAWS, seed=2)
    t = certify_all(y, s, f"recall>={target}", confidence)
    wrong = np.isfinite(t) & (World().recall(np.nan_to_num(t, nan=0.0)) < target)
    assert wrong.mean() <= 1 - confidence


@pytest.mark.parametrize("target", [0.8, 0.85])
def test_precision_guarantee_holds_and_is_tight(target):
    world = World(pos=(6, 2), neg=(2, 6))
    y, s = world.draw(n=1000, draws=DRAWS, seed=3)
    t = certify_all(y, s, f"precision>={target}", 0.9)
    assert np.isfinite(t).mean() >= 0.95
    ok = np.isfinite(t)
    assert np.mean(~ok | (world.precision(np.where(ok, t, 0.5)) < target)) <= 0.1
    oracle = world.recall(world.oracle_precision_threshold(target))
    assert oracle - np.mean(world.recall(t[ok])) <= 0.05


def test_recall_with_flag_budget_keeps_both():
    world = World()
    y, s = world.draw(n=1000, draws=DRAWS, seed=4)
    # the oracle recall-0.9 threshold flags 0.49 of all videos; a budget of 0.6 leaves room
    t = certify_all(y, s, "recall>=0.9,flagged<=0.6", 0.9)
    assert np.isfinite(t).mean() >= 0.5
    ok = np.isfinite(t)
    wrong = ok & (
        (world.recall(np.where(ok, t, 1)) < 0.9) | (world.flagged(np.where(ok, t, 1)) > 0.6)
    )
    assert wrong.mean() <= 0.1


def test_a_validation_threshold_alone_is_not_a_guarantee():
    """The plain choice (highest threshold with empirical recall >= target) misses the target on
    the population about half the time; the certificate does not."""
    world = World(prevalence=0.4)
    y, s = world.draw(n=200, draws=DRAWS, seed=5)
    naive = np.array(
        [np.sort(s[i][y[i] == 1])[int(math.floor(0.1 * y[i].sum()))] for i in range(DRAWS)]
    )
    assert np.mean(world.recall(naive) >= 0.9) < 0.7
    assert np.mean(world.recall(certify_all(y, s, "recall>=0.9", 0.9)) >= 0.9) >= 0.9


# --- exact behaviour ---------------------------------------------------------------------------


def one_sided_upper(k: int, n: int, delta: float) -> float:
    """Clopper-Pearson one-sided upper bound, from scipy's two-sided exact interval."""
    return stats.binomtest(k, n).proportion_ci(1 - 2 * delta, method="exact").high


@pytest.mark.parametrize("seed", range(5))
def test_recall_choice_matches_brute_force(seed):
    y, s = World().draw(n=120, draws=1, seed=seed)
    y, s = y[0], np.round(s[0], 2)  # ties between videos
    c = certify(y, s, "recall>=0.85", confidence=0.9)
    pos = s[y == 1]
    passing = [
        t for t in np.unique(s) if 1 - one_sided_upper(int((pos < t).sum()), len(pos), 0.1) >= 0.85
    ]
    # the miss rate grows with t, so the passing thresholds are a prefix; the highest is chosen
    assert c.certified and c.threshold == max(passing)
    misses = int((pos < c.threshold).sum())
    assert c.bound == pytest.approx(1 - one_sided_upper(misses, len(pos), 0.1), abs=1e-9)
    assert c.bound >= 0.85 and c.bounds == {"recall": c.bound} and c.levels == {"recall": 0.1}
    assert c.empirical["recall"] == pytest.approx(1 - misses / len(pos))


def test_precision_bound_and_choice():
    world = World(pos=(6, 2), neg=(2, 6))
    y, s = world.draw(n=1000, draws=1, seed=7)
    c = certify(y[0], s[0], "precision>=0.8", confidence=0.9)
    assert c.certified and c.method == "ltt-binomial-fallback"
    assert c.threshold in DEFAULT_PRECISION_GRID
    flagged = s[0] >= c.threshold
    false = int((y[0][flagged] == 0).sum())
    level = c.levels["precision"]
    assert 0 < level <= 0.1
    assert c.bound == pytest.approx(1 - one_sided_upper(false, int(flagged.sum()), level))
    assert c.bound >= 0.8


def test_flag_budget_splits_delta_and_bounds_the_flag_rate():
    y, s = World().draw(n=1000, draws=1, seed=8)
    c = certify(y[0], s[0], "recall>=0.9,flagged<=0.6", confidence=0.9)
    assert c.certified and c.method == "ltt-binomial-fixed-sequence-split"
    assert c.levels == {"recall": 0.05, "flagged": 0.05}
    flagged = int((s[0] >= c.threshold).sum())
    assert c.bounds["flagged"] == pytest.approx(one_sided_upper(flagged, 1000, 0.05))
    assert c.bounds["flagged"] <= 0.6 and c.bounds["recall"] >= 0.9
    alone = certify(y[0], s[0], "recall>=0.9", confidence=0.9)
    assert c.threshold <= alone.threshold  # half the delta: a lower (safer) threshold


def test_certificate_is_json():
    y, s = World().draw(n=300, draws=1, seed=9)
    for objective in ["recall>=0.9", "precision>=0.99"]:
        data = json.loads(json.dumps(certify(y[0], s[0], objective).to_json()))
        assert {"method", "confidence", "delta", "objective", "threshold", "bound"} <= set(data)
        assert {"n_positive", "n_negative", "certified", "needed_positives"} <= set(data)
        assert data["delta"] == 0.1 and data["n_positive"] + data["n_negative"] == 300


# --- not certified: how many positives would do ------------------------------------------------


@pytest.mark.parametrize("target", [0.8, 0.9, 0.95])
@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95])
def test_too_few_positives_says_how_many(target, confidence):
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(5, int), np.zeros(300, int)]
    s = np.r_[rng.uniform(0.5, 1, 5), rng.uniform(0, 0.6, 300)]
    c = certify(y, s, f"recall>={target}", confidence=confidence)
    # flagging everything misses no positive, and even then n positives need target^n <= delta
    needed = math.ceil(math.log(1 - confidence) / math.log(target) - 1e-12)
    assert not c.certified and c.threshold is None and c.bound is None
    assert c.needed_positives == needed > c.n_positive == 5
    assert f"about {needed} labelled positives" in c.reason


@pytest.mark.parametrize(
    "objective, world",
    [
        ("precision>=0.8", World()),
        ("precision>=0.9", World(pos=(6, 2), neg=(2, 6))),
        ("recall>=0.9,flagged<=0.6", World()),
        ("precision>=0.7,flagged<=0.3", World()),
    ],
)
def test_needed_positives_are_enough_at_the_same_rates(objective, world):
    y, s = world.draw(n=200, draws=1, seed=11)
    y, s = y[0], s[0]
    c = certify(y, s, objective)
    assert not c.certified and c.needed_positives > c.n_positive
    copies = math.ceil(c.needed_positives / c.n_positive)  # the same rates, more videos
    bigger = certify(np.tile(y, copies), np.tile(s, copies), objective)
    assert bigger.certified


# --- what cannot pass, does not ----------------------------------------------------------------


def test_uninformative_scores_certify_no_precision_above_prevalence():
    rng = np.random.default_rng(12)
    y = (rng.random((200, 500)) < 0.3).astype(int)
    s = rng.random((200, 500))
    t = certify_all(y, s, "precision>=0.6", 0.9)
    assert np.isfinite(t).mean() <= 0.1


def test_reversed_scores_say_no_data_helps():
    y = np.r_[np.ones(50, int), np.zeros(150, int)]
    s = np.r_[np.linspace(0, 0.3, 50), np.linspace(0.4, 1, 150)]
    c = certify(y, s, "precision>=0.5")
    assert not c.certified and c.needed_positives is None
    assert "more labelled data of this kind cannot certify it" in c.reason


def test_constant_scores_cannot_meet_a_flag_budget():
    y = np.r_[np.ones(100, int), np.zeros(100, int)]
    c = certify(y, np.full(200, 0.5), "recall>=0.9,flagged<=0.5")
    assert not c.certified and c.needed_positives is None
    assert "every threshold flags at least 0.5" in c.reason


def test_recall_alone_can_be_bought_by_flagging_everything():
    """Recall is cheap without a budget: the certificate shows what it costs."""
    y = np.r_[np.ones(100, int), np.zeros(100, int)]
    c = certify(y, np.full(200, 0.5), "recall>=0.9")
    assert c.certified and c.empirical["flagged"] == 1.0 and c.empirical["precision"] == 0.5


# --- objective strings and bad input -----------------------------------------------------------


@pytest.mark.parametrize(
    "text, primary, budget, canonical",
    [
        ("recall>=0.95", Target("recall", 0.95), None, "recall>=0.95"),
        ("Precision >= .9", Target("precision", 0.9), None, "precision>=0.9"),
        (
            "recall>=0.95,flagged<=0.02",
            Target("recall", 0.95),
            Target("flagged", 0.02),
            "recall>=0.95,flagged<=0.02",
        ),
        (
            "flagged<=0.1, precision>=0.8",
            Target("precision", 0.8),
            Target("flagged", 0.1),
            "precision>=0.8,flagged<=0.1",
        ),
    ],
)
def test_objective_parsing(text, primary, budget, canonical):
    obj = Objective.parse(text)
    assert (obj.primary, obj.budget, obj.text) == (primary, budget, canonical)
    assert Target("recall", 0.95).risk_level == pytest.approx(0.05)
    assert Target("flagged", 0.02).risk_level == 0.02


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty objective"),
        ("f1", "f1 cannot be certified: certify recall>=R or precision>=P"),
        ("recall>=0.9;flagged<=0.1", "cannot read"),
        ("recall>=", "cannot read 'recall>='"),
        ("recall<=0.9", "recall takes >="),
        ("flagged>=0.1,recall>=0.9", "flagged takes <="),
        ("recall>=1", "strictly between 0 and 1, got 1"),
        ("precision>=0", r"the precision level must lie in \(0, 1\], got 0"),
        ("recall>=0.9,recall>=0.8", "recall is given twice"),
        ("recall>=0.9,precision>=0.8", "recall or precision, not both"),
        ("flagged<=0.1", "a flag budget alone"),
    ],
)
def test_objective_errors(text, match):
    """A bad objective is a usage error (exit 2), from the one parser the sweep also uses."""
    with pytest.raises(UsageError, match=match) as info:
        certify(np.r_[np.ones(5, int), np.zeros(5, int)], np.linspace(0, 1, 10), text)
    assert info.value.exit_code == 2


GOOD_Y = np.r_[np.ones(30, int), np.zeros(70, int)]
GOOD_S = np.linspace(0, 1, 100)[::-1]


@pytest.mark.parametrize(
    "y, s, kwargs, match",
    [
        (np.ones(100, int), GOOD_S, {}, "one class only .all 100 are positive"),
        (np.zeros(100, int), GOOD_S, {}, "one class only .all 100 are negative"),
        (GOOD_Y, np.r_[GOOD_S[:-1], np.nan], {}, "1 of 100 scores are NaN or infinite"),
        (GOOD_Y, np.r_[GOOD_S[:-2], np.inf, -np.inf], {}, "2 of 100 scores are NaN"),
        (GOOD_Y[:-1], GOOD_S, {}, "99 labels but 100 scores"),
        (np.r_[GOOD_Y[:-1], 2], GOOD_S, {}, "labels must be 0 or 1, got 2"),
        ([], [], {}, "labels and scores are empty"),
        (GOOD_Y, np.array(["a"] * 100), {}, "scores must be numbers"),
        (GOOD_Y, GOOD_S[:, None], {}, "must be 1-D"),
        (GOOD_Y, GOOD_S, {"confidence": 1.0}, "confidence must lie strictly between"),
        (GOOD_Y, GOOD_S, {"confidence": 0}, "confidence must lie strictly between"),
        (GOOD_Y, GOOD_S, {"grid": []}, "grid must be a non-empty"),
        (GOOD_Y, GOOD_S, {"grid": [0.5, np.nan]}, "grid must be a non-empty"),
    ],
)
def test_bad_input_is_a_data_error(y, s, kwargs, match):
    with pytest.raises(DataError, match=match) as info:
        certify(y, s, "recall>=0.9", **kwargs)
    assert info.value.exit_code == 5


def test_precision_needs_a_grid_for_scores_outside_unit_interval():
    with pytest.raises(DataError, match="pass grid= on the scores' own scale"):
        certify(GOOD_Y, GOOD_S * 10 - 5, "precision>=0.9")
    c = certify(GOOD_Y, GOOD_S * 10 - 5, "precision>=0.9", grid=np.linspace(-5, 5, 41))
    assert c.n_thresholds == 41


# --- the reference implementation --------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_recall_agrees_with_mapie(seed):
    """MAPIE's controller with fixed-sequence testing certifies the same grid thresholds when
    given the miss rate as its risk. (Its built-in "recall" takes ceil(n * (1 - recall)), which
    floating point can push one miss too high: 76 * (1 - 70/76) = 6.000000000000002.)"""
    risk_control = pytest.importorskip("mapie.risk_control")
    miss_rate = risk_control.BinaryRisk(
        risk_occurrence=lambda y_true, y_pred: y_pred.ravel() == 0,
        risk_condition=lambda y_true, y_pred: y_true.ravel() == 1,
        higher_is_better=False,
    )
    y, s = World().draw(n=300, draws=1, seed=seed)
    y, s = y[0], s[0]
    grid = np.round(np.arange(1, 100) / 100, 2)
    mapie = risk_control.BinaryClassificationController(
        predict_function=lambda x: np.column_stack([1 - x, x]),
        risk=miss_rate,
        target_level=0.1,
        confidence_level=0.9,
        best_predict_param_choice="recall",
        list_predict_params=grid,
        fwer_method="fixed_sequence",
    ).calibrate(s, y)
    ours = certify(y, s, "recall>=0.9", confidence=0.9, grid=grid)
    assert ours.threshold == max(mapie.valid_predict_params)
