"""Decisions a moderation team can defend, end to end through the CLI: the three-way split by
default, calibrated probabilities, certified thresholds (and the honest refusal), thresholds on
any scores, the operating point on every prediction, and compare ranking by test F1."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from harmcache import evaluate, train
from harmcache.errors import DataError
from harmcache.extract.summary import ExtractSummary, InputResult
from harmcache.train.sweep_run import read_scores
from tests.running import invoke, last_json
from tests.synthetic_cache import build


def split_rows(run) -> list[dict]:
    with open(run / "split.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    # Overlapping classes, so the certificate has something to do.
    return build(tmp_path_factory.mktemp("decisions"), 300, signal=1.2, prevalence=0.4)


@pytest.fixture(scope="module")
def runs(syn, tmp_path_factory):
    """Default settings (three-way split, isotonic calibration): a logreg run, and a LightGBM
    run on its split."""
    root = tmp_path_factory.mktemp("runs")
    common = ["--cache", syn.cache.root, "--labels", syn.labels_csv]
    first = invoke("train", *common, "--head", "logreg", "--out", root / "logreg", "--json")
    assert first.exit_code == 0, first.output
    second = invoke("train", *common, "--head", "lightgbm", "--out", root / "gbm",
                    "--split-from", root / "logreg", "--json")  # fmt: skip
    assert second.exit_code == 0, second.output
    return root, first


def test_default_split_is_three_way_and_train_reports_test_first(runs):
    root, result = runs
    sides = {r["split"] for r in split_rows(root / "logreg")}
    assert sides == {"train", "val", "test"}
    config = json.loads((root / "logreg" / "config.json").read_text())
    assert config["split"] == {"source": "hash", "rule": "harmcache-split/1", "seed": 0,
                               "val_fraction": 0.15, "test_fraction": 0.15}  # fmt: skip
    assert config["calibrate"] == "isotonic"
    out = result.stdout
    assert out.index("logreg on ") < out.index(": test F1") < out.index("tuned on validation: F1")
    summary = last_json(result)
    assert summary["subset"] == "test" and summary["f1"] >= 0.8


def test_certified_threshold_is_stored_and_every_decision_carries_it(syn, runs, monkeypatch):
    root, _ = runs
    run = root / "logreg"
    result = invoke("sweep-threshold", run, "--objective", "recall>=0.8", "--confidence", "0.9",
                    "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    out = last_json(result)
    cert = out["certificate"]
    assert out["certified"] is True and out["objective"] == "recall>=0.8"
    assert out["threshold"] == cert["threshold"] and out["score"] == pytest.approx(out["precision"])
    assert cert["method"] == "ltt-binomial-fixed-sequence" and cert["confidence"] == 0.9
    assert cert["bound"] >= 0.8 and cert["n_positive"] + cert["n_negative"] == out["n"]
    assert "certified threshold" in result.stdout and "recall >= " in result.stdout
    saved = json.loads((run / "threshold.json").read_text())
    assert saved["certificate"] == cert and saved["threshold"] == out["threshold"]

    # evaluate on the test split says whether the targets held there.
    evaluation = invoke("evaluate", run, "--json")
    assert evaluation.exit_code == 0, evaluation.output
    check = last_json(evaluation)["guarantee"]
    (recall,) = check["checks"]
    test = last_json(evaluation)
    assert check["subset"] == "test" and recall["observed"] == pytest.approx(test["recall"])
    assert recall["held"] == (test["recall"] >= 0.8) and check["held"] == recall["held"]
    assert "guarantee recall>=0.8 at 90% confidence" in evaluation.stdout

    # predict: threshold, objective, the guarantee, the calibrated probability and the raw score.
    from harmcache.extract import pipeline

    def cached(paths, cache_dir, specs, *, device="cpu", weights_dir=None):
        known = dict(zip(syn.paths, syn.ids))
        return ExtractSummary([InputResult(str(p), known[str(p)], "cached") for p in paths])

    monkeypatch.setattr(pipeline, "extract_with_specs", cached, raising=False)
    predicted = invoke("predict", syn.paths[0], "--run", run, "--segments", "0", "--json")
    assert predicted.exit_code == 0, predicted.output
    (p,) = last_json(predicted)["predictions"]
    assert p["threshold"] == out["threshold"] and p["objective"] == "recall>=0.8"
    assert p["guarantee"]["bound"] == cert["bound"] and 0 <= p["probability"] <= 1
    assert p["label"] == ("harmful" if p["score"] >= p["threshold"] else "safe")
    assert f"p={p['probability']:.4f} (score {p['score']:.4f}" in predicted.stdout
    assert "certified at 90% confidence: recall >= " in predicted.stdout


def test_an_objective_that_cannot_be_certified_says_how_many_positives(runs):
    root, _ = runs
    run = root / "gbm"
    before = (run / "threshold.json").read_text()
    result = invoke("sweep-threshold", run, "--objective", "recall>=0.99", "--confidence", "0.9",
                    "--json")  # fmt: skip
    assert result.exit_code == 5
    out = last_json(result)
    assert out["certified"] is False and out["threshold"] is None
    needed = out["needed_positives"]
    n_pos, n_neg = out["certificate"]["n_positive"], out["certificate"]["n_negative"]
    assert needed > n_pos
    assert result.stderr == (
        f"error: recall>=0.99 cannot be certified at 90% confidence on {n_pos} harmful and "
        f"{n_neg} safe videos: about {needed} labelled harmful videos would be needed "
        f"({needed - n_pos} more, with safe ones at the same prevalence), if new videos score "
        "like these\n"
    )
    assert (run / "threshold.json").read_text() == before


def test_compare_ranks_by_test_f1_and_says_so(runs, tmp_path):
    root, _ = runs
    result = invoke("compare", root / "logreg", root / "gbm", "--json")
    assert result.exit_code == 0, result.output
    out = last_json(result)
    assert out["ranked_by"] == "test F1" and out["warnings"] == []
    f1 = [r["f1"] for r in out["runs"]]
    assert f1 == sorted(f1, reverse=True) and {r["subset"] for r in out["runs"]} == {"test"}
    assert result.stdout.startswith("ranked by test F1\n")
    # The ranking is the test F1's, not the validation F1's the thresholds were tuned on.
    for r in out["runs"]:
        name = "logreg" if r["head"] == "logreg" else "gbm"
        with open(root / name / "test_scores.csv") as f:
            rows = list(csv.DictReader(f))
        y = np.array([int(x["label"]) for x in rows])
        flagged = np.array([float(x["score"]) for x in rows]) >= r["threshold"]
        tp = int((flagged & (y == 1)).sum())
        assert r["f1"] == pytest.approx(2 * tp / (flagged.sum() + y.sum()))


def test_sweep_on_a_scores_csv_without_a_run(tmp_path):
    rng = np.random.default_rng(0)
    y = (rng.random(600) < 0.3).astype(int)
    s = np.clip(rng.normal(0.3 + 0.4 * y, 0.15), 0, 1)
    path = tmp_path / "scores.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "score", "group"])
        w.writerows((yi, f"{si:.6f}", f"g{i // 2}") for i, (yi, si) in enumerate(zip(y, s)))
    plain = invoke("sweep-threshold", "--scores", path, "--bootstrap", "0", "--json")
    assert plain.exit_code == 0, plain.output
    assert last_json(plain)["objective"] == "f1" and "certificate" not in last_json(plain)
    for objective in ("recall>=0.9", "precision>=0.8", "recall>=0.9,flagged<=0.6"):
        result = invoke("sweep-threshold", "--scores", path, "--objective", objective,
                        "--confidence", "0.9", "--json")  # fmt: skip
        assert result.exit_code == 0, (objective, result.output)
        out = last_json(result)
        assert out["certified"] and out["certificate"]["objective"] == objective
        assert out["n"] == 600
    assert "300 groups hold several rows" in result.stdout
    drawn = invoke("sweep-threshold", "--scores", path, "--plot", tmp_path / "t.png")
    assert drawn.exit_code == 0 and (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "text, message",
    [
        ("label,value\n1,0.5\n", r"needs a header with columns label,score\[,group\]; found: "),
        ("label,score\n2,0.5\n", r"scores.csv:2: label must be 0 or 1, got '2'"),
        ("label,score\n1,high\n", r"scores.csv:2: score must be a number, got 'high'"),
        ("label,score\n", r"scores.csv: no rows"),
    ],
)
def test_bad_scores_files(tmp_path, text, message):
    path = tmp_path / "scores.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        read_scores(path)


@pytest.mark.parametrize(
    "args, code, message",
    [
        ([], 2, "error: give a run directory or --scores FILE.csv, not both or neither\n"),
        (["--scores", "{scores}", "--confidence", "1.5", "--objective", "recall>=0.9"], 2,
         "error: --confidence must lie strictly between 0 and 1, got 1.5\n"),
        (["--scores", "{scores}", "--confidence", "0.9", "--objective", "f1"], 2,
         "error: f1 cannot be certified: certify recall>=R or precision>=P, optionally with "
         "',flagged<=F'\n"),
        (["--scores", "{scores}", "--bootstrap", "-1"], 2,
         "error: --bootstrap must be at least 0, got -1\n"),
        (["--scores", "{scores}", "--confidence", "0.9", "--objective", "precision>=0.8",
          "--grid", "scores"], 2,
         "error: --grid scores picks thresholds from the scores themselves; a certified "
         "precision threshold needs a grid fixed in advance (leave --grid out)\n"),
        (["--scores", "{missing}"], 2, "error: --scores {missing}: no such file\n"),
    ],
)  # fmt: skip
def test_sweep_threshold_usage_errors(tmp_path, args, code, message):
    scores = tmp_path / "s.csv"
    scores.write_text("label,score\n1,0.9\n0,0.1\n1,0.8\n0,0.3\n")
    values = {"scores": scores, "missing": tmp_path / "nope.csv"}
    result = invoke("sweep-threshold", *[a.format(**values) for a in args])
    assert result.exit_code == code
    assert result.stderr == message.format(**values)


def test_group_column_keeps_related_clips_on_one_side(syn, tmp_path):
    labels = tmp_path / "grouped.csv"
    with open(labels, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "group"])
        w.writerows(
            (p, y, f"source-{i // 6}") for i, (p, y) in enumerate(zip(syn.paths, syn.labels))
        )
    out = tmp_path / "grouped"
    result = invoke("train", "--cache", syn.cache.root, "--labels", labels, "--head", "logreg",
                    "--out", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    sides: dict[str, set] = {}
    for row in split_rows(out):
        sides.setdefault(row["group"], set()).add(row["split"])
    assert len(sides) == 50 and all(len(s) == 1 for s in sides.values())


def test_split_from_assigns_new_videos_by_the_same_rule(syn, tmp_path):
    first_half = tmp_path / "first.csv"
    with open(first_half, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        w.writerows(list(zip(syn.paths, syn.labels))[:200])
    common = ["--cache", syn.cache.root, "--head", "logreg"]
    assert (
        invoke("train", *common, "--labels", first_half, "--out", tmp_path / "old").exit_code == 0
    )
    grown = invoke("train", *common, "--labels", syn.labels_csv, "--out", tmp_path / "grown",
                   "--split-from", tmp_path / "old")  # fmt: skip
    assert grown.exit_code == 0, grown.output
    assert (
        "were assigned by its rule (" in grown.stdout
        and "100 videos not in its split" in grown.stdout
    )
    old = {r["video_id"]: r["split"] for r in split_rows(tmp_path / "old")}
    new = {r["video_id"]: r["split"] for r in split_rows(tmp_path / "grown")}
    assert len(new) == 300 and all(new[v] == side for v, side in old.items())
    # The new videos land where a fresh split of everything (same seed) would put them.
    fresh = invoke("train", *common, "--labels", syn.labels_csv, "--out", tmp_path / "fresh")
    assert fresh.exit_code == 0
    everything = {r["video_id"]: r["split"] for r in split_rows(tmp_path / "fresh")}
    added = [v for v in new if v not in old]
    agree = sum(new[v] == everything[v] for v in added)
    assert agree >= len(added) - 2  # only the small-set repair may differ


def test_isotonic_calibration_brings_test_ece_under_005(tmp_path):
    # Class-balanced logistic regression at 20 % prevalence over-reports harm.
    syn = build(tmp_path, 3000, signal=1.0, prevalence=0.2, dims={"clip": 8}, frames=4)
    result = train(syn.cache.root, syn.labels_csv, "logreg", tmp_path / "run", on_join=print)
    test = result.metrics["calibration"]["test"]
    assert test["ece"] <= 0.05 and test["ece"] < test["ece_raw"]
    evaluation = evaluate(tmp_path / "run", plot=tmp_path / "reliability.png")
    cal = evaluation.calibration
    assert evaluation.subset == "test"
    assert cal["ece"] == pytest.approx(test["ece"]) and cal["ece_raw"] == pytest.approx(
        test["ece_raw"]
    )
    assert cal["brier"] < cal["brier_raw"]
    assert (tmp_path / "reliability.png").read_bytes()[:4] == b"\x89PNG"


def test_sigmoid_and_no_calibration(syn, tmp_path):
    common = ["--cache", syn.cache.root, "--labels", syn.labels_csv, "--head", "logreg"]
    sig = invoke("train", *common, "--out", tmp_path / "sig", "--calibrate", "sigmoid")
    assert sig.exit_code == 0
    assert json.loads((tmp_path / "sig" / "calibration.json").read_text())["method"] == "sigmoid"
    none = invoke("train", *common, "--out", tmp_path / "none", "--calibrate", "none")
    assert none.exit_code == 0 and not (tmp_path / "none" / "calibration.json").exists()
    assert "uncalibrated scores on test" in invoke("evaluate", tmp_path / "none").stdout
    bad = invoke("train", *common, "--out", tmp_path / "bad", "--calibrate", "platt")
    assert bad.exit_code == 2
    assert bad.stderr == "error: --calibrate must be one of isotonic, sigmoid, none, got 'platt'\n"
