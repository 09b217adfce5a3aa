"""`harmcache sweep-threshold --policy`: a policy certified on a scores file or a run's
per-category validation scores, refusals said in words, the one JSON line, and the exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harmcache.decisions.category_scores import CATEGORY_SCORES_FILE, POLICY_FILE, CategoryScores
from tests.running import invoke, last_json, ok

POLICY = """confidence: 0.9
review_budget: 0.6
categories:
  violence: {remove: "precision>=0.9", review: "recall>=0.9"}
  weapons: {review: "recall>=0.8"}
"""


def scores_table(n: int = 1000, seed: int = 0) -> CategoryScores:
    rng = np.random.default_rng(seed)
    y = rng.random((n, 2)) < (0.3, 0.25)
    s = np.where(y, rng.beta(4, 1.5, y.shape), rng.beta(1.5, 6, y.shape))
    labels = np.where(rng.random(y.shape) < 0.2, np.nan, y.astype(float))
    return CategoryScores(["violence", "weapons"], [f"v{i}.mp4" for i in range(n)], labels, s)


@pytest.fixture
def files(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    scores = tmp_path / "scores.csv"
    scores_table().write_csv(scores)
    return policy, scores


def test_a_scores_file_gets_every_band_and_one_json_line(files):
    policy, scores = files
    result = ok("sweep-threshold", "--policy", policy, "--scores", scores, "--json")
    out = last_json(result)
    assert set(out) == {"categories", "review_share", "review_share_bound", "review_budget",
                        "budget_certified", "confidence", "promises", "method"}  # fmt: skip
    assert out["promises"] == 4 and out["confidence"] == 0.9
    assert out["categories"]["violence"]["remove"]["certified"] is True
    assert set(out["categories"]["weapons"]) == {"review"}
    lines = result.stdout.splitlines()
    assert lines[0].startswith("policy: 2 categories, 4 promises held jointly at 90% confidence")
    assert any(line.strip().startswith("violence remove >= ") for line in lines)
    assert any(line.strip().startswith("weapons  review >= ") for line in lines)
    assert any("review budget 0.6: certified, at most" in line for line in lines)


def test_a_run_gets_policy_json(files, tmp_path):
    policy, scores = files
    run = tmp_path / "run"
    run.mkdir()
    (run / CATEGORY_SCORES_FILE).write_bytes(scores.read_bytes())
    result = ok("sweep-threshold", run, "--policy", policy, "--json")
    saved = json.loads((run / POLICY_FILE).read_text())
    assert saved == last_json(result)
    assert f"wrote {run / POLICY_FILE}" in result.stdout
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*"))  # written in one rename


def test_without_policy_the_sweep_is_unchanged(tmp_path):
    scores = tmp_path / "s.csv"
    rng = np.random.default_rng(1)
    y = rng.random(200) < 0.4
    s = np.where(y, rng.beta(4, 2, 200), rng.beta(2, 4, 200))
    scores.write_text("label,score\n" + "".join(f"{int(a)},{b}\n" for a, b in zip(y, s)))
    out = last_json(ok("sweep-threshold", "--scores", scores, "--bootstrap", "0", "--json"))
    assert out["objective"] == "f1" and 0 < out["threshold"] < 1 and "categories" not in out


def test_refused_promises_still_succeed_and_are_named(files, tmp_path):
    policy, scores = files
    policy.write_text(POLICY.replace("recall>=0.8", "recall>=0.999"))
    result = ok("sweep-threshold", "--policy", policy, "--scores", scores, "--json")
    band = last_json(result)["categories"]["weapons"]["review"]
    assert band["certified"] is False and band["needed_positives"] > band["n_positive"]
    assert "refused: weapons review; the other promises stand" in result.stdout
    assert f"about {band['needed_positives']} labelled harmful videos" in result.stdout


def test_nothing_certified_is_a_data_error_and_writes_nothing(files, tmp_path):
    policy, scores = files
    policy.write_text("confidence: 0.9\ncategories:\n  weapons: {review: recall>=0.999}\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / CATEGORY_SCORES_FILE).write_bytes(scores.read_bytes())
    result = invoke("sweep-threshold", run, "--policy", policy, "--json")
    assert result.exit_code == 5
    assert last_json(result)["categories"]["weapons"]["review"]["certified"] is False
    assert result.stderr.startswith(
        "error: no promise of policy.yaml could be certified (weapons review); see the lines "
        "above for what each would need; "
    )
    assert result.stderr.endswith(f"{run / POLICY_FILE} was not written\n")
    assert not (run / POLICY_FILE).exists()


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--scores", "{scores}", "--policy", "{policy}", "--objective", "recall>=0.9"], 2,
         "error: --policy sets every threshold from the policy file; leave out --objective, "
         "--confidence, --grid, --bootstrap, --review-band, --seed and --plot\n"),
        (["{run}", "--policy", "{policy}"], 2,
         "error: {run} has no val_category_scores.csv: a policy is certified on a run's "
         "per-category validation scores (or give --scores FILE.csv)\n"),
        (["--scores", "{scores}", "--policy", "{missing}"], 2,
         "error: policy {missing}: no such file\n"),
        (["--scores", "{bad_policy}", "--policy", "{bad_policy}"], 2,
         "error: bad.yaml: unknown key 'threshold'; allowed: confidence, review_budget, "
         "categories\n"),
        (["--scores", "{bad_scores}", "--policy", "{policy}"], 5,
         "error: bad.csv:3: violence_score must be a number in [0, 1], got '1.2'\n"),
        (["--scores", "{scores}", "--policy", "{gore}"], 5,
         "error: no scores for category 'gore' (no gore_score column); the scores hold: "
         "violence, weapons\n"),
    ],
)  # fmt: skip
def test_policy_errors(files, tmp_path, args, code, message):
    policy, scores = files
    bad_policy = tmp_path / "bad.yaml"
    bad_policy.write_text("confidence: 0.9\nthreshold: 0.5\n")
    bad_scores = tmp_path / "bad.csv"
    bad_scores.write_text("path,violence,violence_score\na,1,0.5\nb,0,1.2\n")
    gore = tmp_path / "gore.yaml"
    gore.write_text("confidence: 0.9\ncategories:\n  gore: {review: recall>=0.9}\n")
    run = tmp_path / "empty-run"
    run.mkdir()
    values = {"scores": scores, "policy": policy, "missing": tmp_path / "nope.yaml", "run": run,
              "bad_policy": bad_policy, "bad_scores": bad_scores, "gore": gore}  # fmt: skip
    result = invoke("sweep-threshold", *[a.format(**values) for a in args])
    assert result.exit_code == code, result.output
    assert result.stderr == message.format(**values)
