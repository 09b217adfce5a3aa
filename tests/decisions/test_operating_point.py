"""The operating point: the one place scores become labels, and what threshold.json holds."""

from __future__ import annotations

import numpy as np
import pytest

from harmcache.decisions.objective import Objective, bound_text
from harmcache.decisions.operating_point import DEFAULT_THRESHOLD, OperatingPoint, describe_check
from harmcache.decisions.rule import counts_at, flags
from harmcache.decisions.sweep import sweep


def test_a_score_equal_to_the_threshold_is_flagged():
    point = OperatingPoint(0.3)
    assert point.apply([0.1, 0.3, 0.30000001, 0.29999999]).tolist() == [0, 1, 1, 0]
    assert point.label(0.3) == "harmful" and point.label(0.2) == "safe"
    assert OperatingPoint().threshold == DEFAULT_THRESHOLD == 0.5


def test_counts_follow_the_same_rule_as_apply():
    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.3
    s = np.round(rng.random(200), 2)  # many scores equal to grid points
    grid = np.round(np.arange(0.0, 1.01, 0.05), 2)
    c = counts_at(y, s, grid)
    for k, t in enumerate(grid):
        flagged = OperatingPoint(float(t)).apply(s).astype(bool)
        assert c.tp[k] == (flagged & y).sum() and c.fp[k] == (flagged & ~y).sum()
        assert (flagged == flags(s, t)).all()


def test_threshold_json_round_trips():
    y = np.r_[np.ones(30, int), np.zeros(70, int)]
    s = np.linspace(1, 0, 100)
    result = sweep(y, s, "f1")
    record = OperatingPoint.record(result, "val_scores.csv", "threshold.png")
    assert record["source"] == "val_scores.csv" and record["plot"] == "threshold.png"
    point = OperatingPoint.from_json(record)
    assert point.threshold == result.threshold and point.objective == "f1"
    assert not point.certified and point.guarantee is None and point.check(y, s, "x") is None


def test_a_certified_point_checks_its_targets_on_new_videos():
    cert = {
        "certified": True,
        "objective": "recall>=0.8,flagged<=0.5",
        "confidence": 0.9,
        "bound": 0.85,
        "bounds": {"recall": 0.85, "flagged": 0.45},
    }
    point = OperatingPoint(0.5, "recall>=0.8,flagged<=0.5", cert)
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.6, 0.1, 0.7, 0.2, 0.1, 0.1, 0.1, 0.1])
    check = point.check(y, s, "test")
    assert [(c["metric"], c["observed"], c["held"]) for c in check["checks"]] == [
        ("recall", 0.75, False),
        ("flagged", 0.4, True),
    ]
    assert check["held"] is False
    line = describe_check(check)
    assert "recall 0.7500 >= 0.8: missed (n=4)" in line and "flagged 0.4000 <= 0.5: held" in line
    assert point.guarantee["bounds"] == cert["bounds"]


def test_a_flag_budget_constrains_the_sweep_too():
    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.3).astype(int)
    s = np.clip(rng.normal(0.3 + 0.3 * y, 0.2), 0, 1)
    free = sweep(y, s, "recall>=0.8")
    budget = sweep(y, s, "recall>=0.8,flagged<=0.5")
    assert np.mean(flags(s, budget.threshold)) <= 0.5
    assert free.threshold <= budget.threshold or np.mean(flags(s, free.threshold)) <= 0.5


@pytest.mark.parametrize(
    "text, kind, metric, canonical",
    [
        ("F2", "fbeta", "f2", "f2"),
        ("f.5", "fbeta", "f0.5", "f0.5"),
        ("recall >= 0.90", "recall", "precision", "recall>=0.9"),
        ("precision>=0.8,flagged<=0.1", "precision", "recall", "precision>=0.8,flagged<=0.1"),
    ],
)
def test_one_parser_for_sweeps_and_certificates(text, kind, metric, canonical):
    obj = Objective.parse(text)
    assert (obj.kind, obj.metric, obj.text) == (kind, metric, canonical)


def test_bounds_read_the_right_way():
    assert bound_text("flagged", 0.02) == "flagged <= 0.0200"
    assert bound_text("recall", 0.9, 3) == "recall >= 0.900"
