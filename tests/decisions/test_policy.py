"""A policy over categories: parsed with clear refusals, certified band by band at delta/m so
that every promise holds together, the review share bounded although the thresholds were chosen
on the same rows, and each video given one action."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from harmcache.decisions.actions import decide, review_share
from harmcache.decisions.category_scores import CategoryScores
from harmcache.decisions.certify import certify
from harmcache.decisions.policy import (
    GRID_VALUES,
    Policy,
    budget_candidates,
    certify_policy,
    upper_bound,
)
from harmcache.errors import DataError, UsageError

BOTH = {"remove": "precision>=0.9", "review": "recall>=0.9"}
TOP_LEVEL = {"categories", "review_share", "review_share_bound", "review_budget",
             "budget_certified", "confidence", "promises", "method"}  # fmt: skip
BAND_KEYS = {"threshold", "certified", "bound", "level", "needed_positives", "n_positive",
             "n_negative", "objective", "confidence", "method", "reason"}  # fmt: skip


class World:
    """Independent categories with Beta scores per class, so every population figure is exact:
    the share of videos scoring below c in all categories is the product of the categories'."""

    def __init__(self, prevalence=(0.3, 0.25), pos=(4, 1.5), neg=(1.5, 6)):
        self.prevalence = np.array(prevalence)
        self.pos, self.neg = stats.beta(*pos), stats.beta(*neg)
        self.categories = [f"c{k}" for k in range(len(prevalence))]

    def draw(self, n: int, rng, missing: float = 0.0) -> CategoryScores:
        y = rng.random((n, len(self.prevalence))) < self.prevalence
        s = np.where(y, self.pos.rvs(y.shape, random_state=rng),
                     self.neg.rvs(y.shape, random_state=rng))  # fmt: skip
        labels = np.where(rng.random(y.shape) < missing, np.nan, y.astype(float))
        return CategoryScores(self.categories, [f"v{i}" for i in range(n)], labels, s)

    def precision(self, k: int, t: float) -> float:
        tp = self.prevalence[k] * self.pos.sf(t)
        return tp / (tp + (1 - self.prevalence[k]) * self.neg.sf(t))

    def recall(self, t: float) -> float:
        return self.pos.sf(t)

    def below(self, c: list[float]) -> float:
        """P(every category's score < c_k)."""
        out = 1.0
        for k, t in enumerate(c):
            pi = self.prevalence[k]
            out *= 1.0 if math.isinf(t) else pi * self.pos.cdf(t) + (1 - pi) * self.neg.cdf(t)
        return out

    def review_share(self, bands) -> float:
        remove = [math.inf if b is None else b for _, b in bands.values()]
        review = [min(math.inf if a is None else a, b) for (a, _), b in zip(bands.values(), remove)]
        return self.below(remove) - self.below(review)


def policy(categories: dict, confidence: float = 0.9, budget: float | None = None) -> Policy:
    record = {"confidence": confidence, "categories": categories}
    if budget is not None:
        record["review_budget"] = budget
    return Policy.from_dict(record)


@pytest.fixture(scope="module")
def data() -> CategoryScores:
    return World().draw(800, np.random.default_rng(0), missing=0.2)


# --- parsing -----------------------------------------------------------------------------------


def test_reads_the_yaml_file(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(
        "confidence: 0.9\nreview_budget: 0.10\ncategories:\n"
        '  violence: {remove: "precision>=0.95", review: "recall>=0.9"}\n'
        "  weapons:  {review: recall>=0.8}\n"
    )
    p = Policy.read(path)
    assert p.confidence == 0.9 and p.review_budget == 0.1 and list(p.categories) == [
        "violence", "weapons"]  # fmt: skip
    assert p.categories["violence"].remove.text == "precision>=0.95"
    assert p.categories["weapons"].remove is None
    assert p.categories["weapons"].review.text == "recall>=0.8"
    assert p.promises == 4 and Policy.load(path) == p and Policy.load(p) is p


@pytest.mark.parametrize(
    "record, message",
    [
        ([1, 2], r"policy: a policy is a mapping with keys confidence, review_budget, categories"),
        ({"confidence": 0.9, "categories": {"v": BOTH}, "budget": 0.1},
         r"policy: unknown key 'budget'; allowed: confidence, review_budget, categories"),
        ({"categories": {"v": BOTH}},
         r"policy: confidence is missing; give e.g. confidence: 0.9"),
        ({"confidence": 1.5, "categories": {"v": BOTH}},
         r"policy: confidence must be a number strictly between 0 and 1, got 1.5"),
        ({"confidence": True, "categories": {"v": BOTH}},
         r"policy: confidence must be a number strictly between 0 and 1, got True"),
        ({"confidence": 0.9, "review_budget": "10%", "categories": {"v": BOTH}},
         r"policy: review_budget must be a number strictly between 0 and 1, got '10%'"),
        ({"confidence": 0.9}, r"policy: categories must map each category to its bands, e\.g\."),
        ({"confidence": 0.9, "categories": {}}, r"policy: categories must map each category"),
        ({"confidence": 0.9, "categories": {"v": {}}},
         r"policy: categories\.v has no band; give remove: precision>=P, review: recall>=R, "
         r"or both"),
        ({"confidence": 0.9, "categories": {"v": {"block": "precision>=0.9"}}},
         r"policy: categories\.v: unknown band 'block'; allowed: remove \(precision>=P\), "
         r"review \(recall>=R\)"),
        ({"confidence": 0.9, "categories": {"v": {"remove": "recall>=0.9"}}},
         r"policy: categories\.v\.remove must be precision>=X with X strictly between 0 and 1, "
         r"got 'recall>=0\.9'"),
        ({"confidence": 0.9, "categories": {"v": {"review": "precision>=0.9"}}},
         r"categories\.v\.review must be recall>=X with X strictly between 0 and 1"),
        ({"confidence": 0.9, "categories": {"v": {"review": "recall>=1"}}},
         r"categories\.v\.review must be recall>=X .*, got 'recall>=1'"),
        ({"confidence": 0.9, "categories": {"v": {"review": 0.9}}},
         r"categories\.v\.review must be recall>=X .*, got 0\.9"),
        ({"confidence": 0.9, "categories": {"v": {"review": "recall>=0.9,flagged<=0.1"}}},
         r"categories\.v\.review must be recall>=X"),
        ({"confidence": 0.9, "categories": {3: BOTH}},
         r"policy: category 3: a category is named by text, as in its scores' column NAME_score"),
    ],
)  # fmt: skip
def test_bad_policies_name_the_key_and_what_is_allowed(record, message):
    with pytest.raises(UsageError, match=message):
        Policy.from_dict(record)


@pytest.mark.parametrize(
    "text, message",
    [
        ("confidence: [0.9\n", r"p\.yaml:2: not valid YAML"),
        ("- 1\n- 2\n", r"p\.yaml: a policy is a mapping"),
    ],
)
def test_bad_yaml_is_a_usage_error(tmp_path, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        Policy.read(path)


def test_a_missing_policy_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match=r"policy .*nope\.yaml: no such file"):
        Policy.read(tmp_path / "nope.yaml")


# --- certifying --------------------------------------------------------------------------------


@pytest.mark.parametrize("band, objective", [("remove", "precision>=0.9"),
                                             ("review", "recall>=0.9")])  # fmt: skip
def test_one_category_one_band_is_plain_certify(data, band, objective):
    cert = certify_policy(policy({"c0": {band: objective}}), data)
    y, s = data.labelled("c0")
    plain = certify(y, s, objective, confidence=0.9)
    got = cert.bands["c0"][band]
    assert cert.policy.promises == 1 and got.confidence == pytest.approx(0.9)
    assert got.threshold == plain.threshold and got.certificate.bound == plain.bound


def test_the_error_budget_is_split_over_every_promise(data):
    p = policy({"c0": BOTH, "c1": BOTH}, budget=0.5)
    cert = certify_policy(p, data)
    assert p.promises == 5 and cert.to_json()["promises"] == 5
    moved = 0
    for category in ("c0", "c1"):
        y, s = data.labelled(category)
        for band, objective in BOTH.items():
            got = cert.bands[category][band]
            assert got.confidence == pytest.approx(1 - 0.1 / 5)
            at_share = certify(y, s, objective, confidence=1 - 0.1 / 5)
            expected = at_share.threshold
            if band == "review":
                expected = min(expected, cert.bands[category]["remove"].threshold)
            assert got.threshold == expected
            moved += certify(y, s, objective, confidence=0.9).threshold != at_share.threshold
    assert moved  # the split costs something: delta/m is not delta


def test_a_refused_category_says_how_many_positives_while_the_others_certify():
    rng = np.random.default_rng(1)
    world = World(prevalence=(0.3, 0.02))
    data = world.draw(500, rng)
    cert = certify_policy(policy({"c0": BOTH, "c1": {"remove": "precision>=0.95"}}), data)
    assert cert.bands["c0"]["remove"].certified and cert.bands["c0"]["review"].certified
    refused = cert.bands["c1"]["remove"]
    assert not refused.certified and refused.threshold is None
    assert refused.needed_positives > refused.n_positive
    out = cert.to_json()["categories"]["c1"]["remove"]
    assert out["certified"] is False and out["threshold"] is None
    assert out["needed_positives"] == refused.needed_positives
    assert f"about {refused.needed_positives} labelled harmful videos" in out["reason"]
    assert any(line.strip().startswith("c1 remove refused: precision>=0.95") for line in
               cert.lines())  # fmt: skip
    assert cert.any_certified


def test_a_category_with_one_class_is_refused_not_raised(data):
    labels = data.labels.copy()
    labels[:, 1] = np.where(np.isnan(labels[:, 1]), np.nan, 0.0)
    one_class = CategoryScores(data.categories, data.ids, labels, data.scores)
    cert = certify_policy(policy({"c0": BOTH, "c1": {"review": "recall>=0.8"}}), one_class)
    band = cert.bands["c1"]["review"]
    assert not band.certified and band.needed_positives is None and band.n_positive == 0
    assert "recall>=0.8 cannot be certified: calibration labels hold one class only" in band.reason
    assert cert.bands["c0"]["remove"].certified


def test_a_policy_category_missing_from_the_scores_is_a_data_error(data):
    with pytest.raises(DataError, match=r"no scores for category 'gore'"):
        certify_policy(policy({"c0": BOTH, "gore": BOTH}), data)


def test_blank_labels_are_masked_not_read_as_safe():
    rng = np.random.default_rng(2)
    n = 400
    y = (rng.random(n) < 0.5).astype(float)
    s = np.where(y == 1, rng.uniform(0.8, 1.0, n), rng.uniform(0.0, 0.3, n))
    unlabelled = rng.random(n) < 0.3
    s[unlabelled] = rng.uniform(0.6, 0.7, unlabelled.sum())  # harmful-looking, never labelled
    labels = np.where(unlabelled, np.nan, y)
    data = CategoryScores(["v"], [str(i) for i in range(n)], labels[:, None], s[:, None])
    cert = certify_policy(policy({"v": {"remove": "precision>=0.95"}}), data)
    masked = certify(y[~unlabelled], s[~unlabelled], "precision>=0.95", confidence=0.9)
    as_zero = certify(np.where(unlabelled, 0, y), s, "precision>=0.95", confidence=0.9)
    got = cert.bands["v"]["remove"]
    assert (
        got.threshold == masked.threshold
        and got.n_positive + got.n_negative == n - unlabelled.sum()
    )
    assert got.threshold < 0.6 < as_zero.threshold  # read as 0, the blanks would push it up


def test_a_review_threshold_above_remove_is_lowered_to_it():
    rng = np.random.default_rng(3)
    n = 400
    y = rng.random(n) < 0.5
    s = np.where(y, rng.uniform(0.5, 1.0, n), rng.uniform(0.0, 0.2, n))
    data = CategoryScores(["v"], [str(i) for i in range(n)], y[:, None], s[:, None])
    cert = certify_policy(policy({"v": {"remove": "precision>=0.9", "review": "recall>=0.5"}}),
                          data)  # fmt: skip
    remove, review = cert.bands["v"]["remove"], cert.bands["v"]["review"]
    assert review.clamped_from > remove.threshold == review.threshold
    assert review.certificate.bound >= 0.5 and cert.review_share == 0.0
    assert "lowered to t_remove" in cert.lines()[2]


def test_the_json_is_shaped_for_policy_json(data):
    cert = certify_policy(policy({"c0": BOTH, "c1": {"review": "recall>=0.8"}}, budget=0.5), data)
    out = json.loads(json.dumps(cert.to_json(), allow_nan=False))
    assert set(out) == TOP_LEVEL
    assert set(out["categories"]) == {"c0", "c1"}
    assert set(out["categories"]["c0"]) == {"remove", "review"}
    assert set(out["categories"]["c1"]) == {"review"}
    for bands in out["categories"].values():
        for band in bands.values():
            assert BAND_KEYS <= set(band) and band["certified"] is True
            assert band["bound"] >= band["level"] and band["needed_positives"] is None
    assert out["confidence"] == 0.9 and out["promises"] == 4 and out["review_budget"] == 0.5
    assert out["review_share_bound"] >= out["review_share"] and out["budget_certified"] is True
    assert out["method"] == "ltt-bonferroni"


def test_without_a_budget_nothing_is_promised_about_review(data):
    cert = certify_policy(policy({"c0": BOTH}), data)
    out = cert.to_json()
    assert out["review_share_bound"] is None and out["budget_certified"] is None
    assert out["promises"] == 2 and 0 < out["review_share"] < 1
    assert "no review budget set, nothing promised" in cert.lines()[-1]


def test_the_review_bound_holds_over_every_grid_setting_at_its_share(data):
    p = policy({"c0": BOTH, "c1": {"review": "recall>=0.8"}}, budget=0.5)
    cert = certify_policy(p, data)
    n_pairs = GRID_VALUES * (GRID_VALUES + 1) // 2
    assert budget_candidates(p) == cert.budget_candidates == n_pairs * GRID_VALUES == 5253 * 102
    # The outward rounding by hand: t_review down, t_remove up, to the 0.01 grid.
    (a0, b0), (a1, _) = cert.thresholds()["c0"], cert.thresholds()["c1"]
    a0, b0, a1 = math.floor(a0 * 100) / 100, math.ceil(b0 * 100) / 100, math.floor(a1 * 100) / 100
    s0, s1 = data.column("c0"), data.column("c1")
    reviewed = (s0 < b0) & ((s0 >= a0) | (s1 >= a1))
    level = 0.1 / 4 / budget_candidates(p)
    assert cert.review_share_bound == upper_bound(int(reviewed.sum()), len(data), level)
    assert cert.review_share_bound > int(reviewed.sum()) / len(data) >= cert.review_share


def test_an_exceeded_budget_is_reported_not_met_by_moving_thresholds(data):
    loose = certify_policy(policy({"c0": BOTH, "c1": BOTH}, budget=0.5), data)
    tight = certify_policy(policy({"c0": BOTH, "c1": BOTH}, budget=0.01), data)
    assert loose.budget_certified is True and tight.budget_certified is False
    assert tight.thresholds() == loose.thresholds()
    by = tight.review_share_bound - 0.01
    assert "review budget 0.01: NOT certified: the review share's bound " in tight.lines()[-1]
    assert f"exceeds it by {by:.4f}" in tight.lines()[-1]


def test_upper_bound_is_exact_at_tiny_levels():
    assert upper_bound(10, 10, 0.01) == 1.0
    # 1 - 1e-20 is 1.0 in floating point; the bound must still be below 1.
    assert 0.05 < upper_bound(50, 2000, 1e-20) < 0.2
    assert upper_bound(50, 2000, 0.05) == pytest.approx(stats.beta.ppf(0.95, 51, 1950))


def test_every_promise_holds_together_over_repeated_draws():
    world = World()
    p = policy({"c0": BOTH, "c1": BOTH}, budget=0.5)
    rng = np.random.default_rng(4)
    held, certified, budget_certified = [], 0, 0
    for _ in range(200):
        cert = certify_policy(p, world.draw(500, rng))
        ok = True
        for k, c in enumerate(world.categories):
            remove, review = cert.bands[c]["remove"], cert.bands[c]["review"]
            if remove.certified:
                ok &= world.precision(k, remove.threshold) >= 0.9
            if review.certified:
                ok &= world.recall(review.threshold) >= 0.9
            certified += remove.certified + review.certified
        if cert.budget_certified:
            ok &= world.review_share(cert.thresholds()) <= 0.5
            budget_certified += 1
        held.append(ok)
    assert np.mean(held) >= 0.9
    assert certified >= 0.7 * 200 * 4 and budget_certified >= 100  # not vacuous


# --- actions -----------------------------------------------------------------------------------


def test_each_video_takes_the_most_severe_action_and_who_decided_it(data):
    cert = certify_policy(policy({"c0": BOTH, "c1": BOTH}), data)
    (a0, b0), (a1, b1) = cert.thresholds().values()
    lo, hi = min(a0, a1) / 2, (1 + max(b0, b1)) / 2
    mid0, mid1 = (a0 + b0) / 2, (a1 + b1) / 2
    scores = {"c0": np.array([lo, mid0, hi, mid0, hi]), "c1": np.array([lo, lo, mid1, mid1, hi])}
    actions = decide(cert, scores)
    assert actions.action.tolist() == ["allow", "review", "remove", "review", "remove"]
    assert actions.per_category["c0"].tolist() == ["allow", "review", "remove", "review", "remove"]
    assert actions.per_category["c1"].tolist() == ["allow", "allow", "review", "review", "remove"]
    assert actions.decided_by[2] == "c0"  # the one category at remove
    assert actions.decided_by[3] == ("c0" if mid0 >= mid1 else "c1")  # both review: the higher
    assert actions.decided_by[0] == "c0"  # both allow at the same score: the first
    assert decide(cert.to_json(), scores).action.tolist() == actions.action.tolist()
    assert actions.shares() == {"allow": 0.2, "review": 0.4, "remove": 0.4}
    assert review_share(cert.thresholds(), scores) == 0.4


def test_a_refused_band_never_fires(data):
    cert = certify_policy(policy({"c0": BOTH}), data)
    record = cert.to_json()
    record["categories"]["c0"]["remove"].update(certified=False, threshold=None)
    actions = decide(record, {"c0": np.array([0.999, 0.0])})
    assert actions.action.tolist() == ["review", "allow"]


def test_decide_needs_every_policy_category(data):
    cert = certify_policy(policy({"c0": BOTH, "c1": BOTH}), data)
    with pytest.raises(DataError, match=r"no scores for c1; the policy decides on c0, c1"):
        decide(cert, {"c0": np.array([0.5])})
    with pytest.raises(DataError, match=r"different numbers of scores: \[1, 2\]"):
        decide(cert, {"c0": np.array([0.5]), "c1": np.array([0.5, 0.1])})
    with pytest.raises(DataError, match=r"not a policy certificate"):
        decide({"threshold": 0.5}, {"c0": np.array([0.5])})
