"""The moderation-policy path on the planted multi-category set, as `make demo` runs it: the
videos deleted after extraction (default workers and engine), both heads at their default
settings with the taxonomy, the policy certified on validation and held on test, a prediction
and the review queue (bench/multi_policy.py's pipeline, run in process)."""

from __future__ import annotations

import csv

import pytest

from bench.multi_policy import HEADS, TARGET_F1, per_category, pipeline
from harmcache.demo_multi import CATEGORIES, TAXONOMY
from tests.running import ok

POLICY_CATEGORIES = {"violence", "gore"}
"""What policy.yaml names: the other categories never act."""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    return pipeline(tmp_path_factory.mktemp("multi"), lambda *args: ok(*args).output)


def test_the_videos_are_gone_before_stage_two(done):
    folder = done["queue_file"].parent
    assert not list((folder / "set" / "multi").glob("*.mp4"))
    assert [p.name for p in (folder / "uploads").iterdir()] == ["multi_007.mp4"]


@pytest.mark.parametrize("head", HEADS)
def test_every_category_and_the_derived_parent_reach_the_f1_target_on_test(done, head):
    evaluation = done["heads"][head]["evaluation"]
    assert evaluation["subset"] == "test"
    table = per_category(evaluation)
    assert set(table) == {*CATEGORIES, *TAXONOMY}
    for name, row in table.items():
        assert row["f1"] >= TARGET_F1, (head, name, row)
        # Scored on the 19 test videos; its threshold was tuned on the 38 validation ones.
        assert (row["n"], row["val_n"]) == (19, 38), (head, name)
        assert 0 < row["n_positive"] < row["n"], (head, name)


@pytest.mark.parametrize("head", HEADS)
def test_the_policy_certifies_on_validation_and_every_band_holds_on_test(done, head):
    policy = done["heads"][head]["policy"]
    assert policy["promises"] == 4 and policy["budget_certified"]  # three bands and the budget
    certified = {
        (category, band): result["certified"]
        for category, bands in policy["categories"].items()
        for band, result in bands.items()
    }
    assert certified == {
        ("violence", "remove"): True,
        ("violence", "review"): True,
        ("gore", "review"): True,
    }
    bands = done["heads"][head]["evaluation"]["bands"]
    held = {(c, band): r["held"] for c, per in bands.items() for band, r in per.items()}
    assert held == dict.fromkeys(certified, True), bands


def test_predict_acts_only_through_the_policys_categories(done):
    (prediction,) = done["predict"]["predictions"]
    by_name = {c["category"]: c for c in prediction["categories"]}
    assert prediction["action"] == "remove" and prediction["decided_by"] == "violence"
    assert by_name["violence"]["action"] == "remove" and by_name["violence"]["spans"]
    assert {name for name, c in by_name.items() if c["acts"]} == POLICY_CATEGORIES
    assert all(c["action"] == "allow" for n, c in by_name.items() if n not in POLICY_CATEGORIES)


def test_the_queue_lists_what_the_policy_removes_or_reviews(done):
    with open(done["queue_file"], newline="") as f:
        rows = list(csv.DictReader(f))
    summary = done["queue"]
    assert summary["scored"] == 96 and summary["bands"] == "policy"
    assert len(rows) == summary["remove"] + summary["review"] > 0
    assert {r["category"] for r in rows} <= POLICY_CATEGORIES
    assert {r["action"] for r in rows} <= {"remove", "review"}
    actions = [r["action"] for r in rows]
    assert actions == sorted(actions, key=lambda a: a != "remove")  # remove first
    # The kept upload is in the cache, so the queue holds it too.
    assert any(r["path"].endswith("multi_007.mp4") for r in rows)
