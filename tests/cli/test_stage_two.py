"""Stage two end to end through the CLI: train, sweep-threshold, evaluate, compare, predict;
run directories round-trip; errors are one line; no step opens a video."""

from __future__ import annotations

import csv
import json
import re
import shutil

import numpy as np
import pytest

from harmcache.extract.summary import ExtractSummary, InputResult
from harmcache.train.rundir import load_run
from tests.running import invoke, last_json
from tests.synthetic_cache import build

FAST_TRANSFORMER = ["--epochs", "2"]


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    return build(tmp_path_factory.mktemp("cli"), 80, signal=3.0)


@pytest.fixture(scope="module")
def runs(syn, tmp_path_factory):
    """A logreg run and a LightGBM run on the same split."""
    root = tmp_path_factory.mktemp("runs")
    cache = syn.cache.root
    first = invoke("train", "--cache", cache, "--labels", syn.labels_csv, "--head", "logreg",
                   "--out", root / "logreg", "--json")  # fmt: skip
    assert first.exit_code == 0, first.output
    second = invoke("train", "--cache", cache, "--labels", syn.labels_csv, "--head", "lightgbm",
                    "--out", root / "lightgbm", "--split-from", root / "logreg")  # fmt: skip
    assert second.exit_code == 0, second.output
    return root, first


def test_train_writes_a_complete_run_directory(syn, runs):
    root, result = runs
    assert "labels: 80 rows; 80 matched 80 cached videos" in result.stdout
    assert "labels with no cached video: 0" in result.stdout
    assert "cached videos with no label: 0" in result.stdout
    summary = last_json(result)
    assert summary["f1"] >= 0.95 and 0 < summary["threshold"] < 1
    run = root / "logreg"
    for name in ("config.json", "split.csv", "features.json", "val_scores.csv", "metrics.json",
                 "threshold.json", "head/head.json"):  # fmt: skip
        assert (run / name).exists(), name
    features = json.loads((run / "features.json").read_text())
    assert set(features) == {"clip", "slowfast", "yolo"}
    assert features["clip"]["spec"] == syn.families["clip"].spec
    assert features["clip"]["fingerprint"] == syn.families["clip"].fingerprint
    threshold = json.loads((run / "threshold.json").read_text())
    assert {"threshold", "objective", "score"} <= threshold.keys()
    with open(run / "val_scores.csv") as f:
        rows = list(csv.DictReader(f))
    with open(run / "split.csv") as f:
        split = list(csv.DictReader(f))
    assert len(rows) == sum(r["split"] == "val" for r in split) > 0
    with open(run / "test_scores.csv") as f:
        assert len(list(csv.DictReader(f))) == sum(r["split"] == "test" for r in split) > 0
    assert json.loads((run / "calibration.json").read_text())["method"] == "isotonic"
    assert summary["subset"] == "test" and "f1" in summary["tuned_on"]
    assert (root / "lightgbm" / "split.csv").read_text() == (run / "split.csv").read_text()
    config = json.loads((run / "config.json").read_text())
    assert config["head"] == "logreg" and config["head_params"]["C"] == 1.0


def test_run_round_trip_reproduces_validation_scores(syn, runs):
    root, _ = runs
    for name in ("logreg", "lightgbm"):
        run = load_run(root / name)
        ids, _, _, scores = run.val_scores()
        np.testing.assert_allclose(run.score_cache(syn.cache, ids), scores, rtol=0, atol=1e-12)


def test_transformer_run_round_trip(syn, tmp_path):
    out = tmp_path / "tf"
    result = invoke("train", "--cache", syn.cache.root, "--labels", syn.labels_csv, "--out", out,
                    *FAST_TRANSFORMER)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "epoch 1/2" in result.stderr
    run = load_run(out)
    ids, _, _, scores = run.val_scores()
    np.testing.assert_allclose(run.score_cache(syn.cache, ids), scores, rtol=0, atol=1e-6)


def test_sweep_threshold_rewrites_threshold_and_draws(runs):
    root, _ = runs
    run = root / "logreg"
    result = invoke("sweep-threshold", run, "--objective", "recall>=0.9", "--bootstrap", "200",
                    "--review-band", "0.9,0.95", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "chosen threshold" in result.stdout and "review band" in result.stdout
    saved = json.loads((run / "threshold.json").read_text())
    assert saved["objective"] == "recall>=0.9" and saved["recall"] >= 0.9
    assert saved["bootstrap"]["replicates"] == 200
    assert last_json(result)["threshold"] == saved["threshold"]
    assert (run / "threshold.png").read_bytes()[:4] == b"\x89PNG"
    back = invoke("sweep-threshold", run, "--bootstrap", "0")
    assert back.exit_code == 0
    assert json.loads((run / "threshold.json").read_text())["objective"] == "f1"


def test_evaluate_json_last_line(runs):
    root, _ = runs
    result = invoke("evaluate", root / "lightgbm", "--json")
    assert result.exit_code == 0, result.output
    out = last_json(result)
    assert {"precision", "recall", "f1", "auroc", "ap", "threshold"} <= out.keys()
    assert out["subset"] == "test" and out["tuned_on"]["n"] > 0
    assert result.stdout.index("test:") < result.stdout.index("tuned on validation:")
    assert {"ece_raw", "ece", "brier_raw", "brier"} <= out["calibration"].keys()
    assert (root / "lightgbm" / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    val = last_json(invoke("evaluate", root / "lightgbm", "--subset", "val", "--json"))
    assert val["subset"] == "validation" and val["tuned_on"] is None


def test_evaluate_held_out_labels(syn, tmp_path):
    # Train on half the videos; evaluate on the other half, from the cache alone.
    train_csv, test_csv = tmp_path / "train.csv", tmp_path / "test.csv"
    for path, part in ((train_csv, slice(0, None, 2)), (test_csv, slice(1, None, 2))):
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "label"])
            w.writerows(zip(syn.paths[part], syn.labels[part]))
    out = tmp_path / "half"
    assert invoke("train", "--cache", syn.cache.root, "--labels", train_csv, "--head", "logreg",
                  "--out", out).exit_code == 0  # fmt: skip
    result = invoke("evaluate", out, "--labels", test_csv, "--cache", syn.cache.root, "--json")
    assert result.exit_code == 0, result.output
    metrics = last_json(result)
    assert metrics["n"] == 40 and metrics["f1"] >= 0.9
    assert "train/val split" not in result.stdout
    leaky = invoke("evaluate", out, "--labels", train_csv)
    assert "this is not a held-out evaluation" in leaky.stdout


def test_test_split_is_evaluated_by_default(syn, tmp_path):
    out = tmp_path / "with-test"
    assert invoke("train", "--cache", syn.cache.root, "--labels", syn.labels_csv, "--head",
                  "logreg", "--out", out, "--test-fraction", "0.2").exit_code == 0  # fmt: skip
    result = invoke("evaluate", out, "--json")
    with open(out / "split.csv") as f:
        n_test = sum(r["split"] == "test" for r in csv.DictReader(f))
    assert last_json(result)["subset"] == "test" and last_json(result)["n"] == n_test
    none = tmp_path / "no-test"
    assert invoke("train", "--cache", syn.cache.root, "--labels", syn.labels_csv, "--head",
                  "logreg", "--out", none, "--test-fraction", "0").exit_code == 0  # fmt: skip
    assert last_json(invoke("evaluate", none, "--json"))["subset"] == "validation"
    asked = invoke("evaluate", none, "--subset", "test")
    assert asked.exit_code == 5
    assert asked.stderr == f"error: {none} has no test split; train with --test-fraction above 0\n"


def test_compare_warns_when_splits_differ(syn, runs, tmp_path):
    root, _ = runs
    same = invoke("compare", root / "logreg", root / "lightgbm", "--json")
    assert same.exit_code == 0, same.output
    assert last_json(same)["warnings"] == []
    other = tmp_path / "seed5"
    assert invoke("train", "--cache", syn.cache.root, "--labels", syn.labels_csv, "--head",
                  "logreg", "--out", other, "--seed", "5").exit_code == 0  # fmt: skip
    result = invoke("compare", root / "logreg", other)
    assert "use different splits" in result.stderr


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--labels", "{bad_labels}"], 5, "error: 0 of 2 labels matched a cached video"),
        (["--labels", "{one_class}"], 5, "error: all 3 matched videos are labelled safe (0)"),
        (["--labels", "{labels}", "--head", "forest"], 2, "error: unknown head 'forest'"),
        (
            ["--labels", "{labels}", "--head", "logreg", "--epochs", "3"],
            2,
            "error: --epochs is not a setting of the logreg head (its settings: C, max_iter, seed)",
        ),
        (["--labels", "{labels}", "--features", "audio"], 5, "error: the cache holds no audio"),
    ],
)
def test_train_errors_are_one_line(syn, tmp_path, args, code, message):
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\nclips/V_1.mp4,1\nclips/V_2.mp4,0\n")
    one = tmp_path / "one.csv"
    one.write_text("path,label\n" + "".join(f"{p},0\n" for p in syn.paths[:3]))
    values = {"bad_labels": bad, "one_class": one, "labels": syn.labels_csv}
    args = [a.format(**{k: str(v) for k, v in values.items()}) for a in args]
    result = invoke("train", "--cache", syn.cache.root, "--out", tmp_path / "r", *args)
    assert result.exit_code == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message)
    assert "Traceback" not in result.output


def test_existing_out_and_unmeetable_objective(runs, syn):
    root, _ = runs
    again = invoke("train", "--cache", syn.cache.root, "--labels", syn.labels_csv, "--head",
                   "logreg", "--out", root / "logreg")  # fmt: skip
    assert again.exit_code == 2 and "already exists" in again.stderr
    result = invoke("sweep-threshold", root / "lightgbm", "--objective", "precision>=1.01")
    assert (
        result.exit_code == 2
        and "the precision level must lie in (0, 1], got 1.01" in result.stderr
    )
    not_a_run = invoke("evaluate", root)
    assert not_a_run.exit_code == 2 and "is not a run directory" in not_a_run.stderr


def test_a_modality_identical_everywhere_is_left_out_unless_asked_for(tmp_path):
    # Random-init YOLO on synthetic clips detects nothing: all-zero in every video.
    syn = build(tmp_path, 40, signal=3.0, zero=("yolo",))
    common = ["--cache", syn.cache.root, "--labels", syn.labels_csv, "--head", "logreg"]
    result = invoke("train", *common, "--out", tmp_path / "default")
    assert result.exit_code == 0, result.output
    assert re.search(
        r"left yolo features out: identical for all \d+ videos \(all zero\)", result.output
    )
    assert set(json.loads((tmp_path / "default" / "features.json").read_text())) == {
        "clip",
        "slowfast",
    }
    asked = invoke("train", *common, "--out", tmp_path / "asked", "--features", "clip,yolo")
    assert asked.exit_code == 5
    assert re.search(r"error: yolo features are identical for all \d+ videos", asked.stderr)


def test_unmeetable_objective_exits_with_a_data_error(runs, tmp_path):
    root, _ = runs
    run = tmp_path / "copy"
    shutil.copytree(root / "logreg", run)
    # A safe video scores as high as any harmful one: precision 1.0 is out of reach.
    with open(run / "val_scores.csv", "a", newline="") as f:
        csv.writer(f).writerow(["0" * 64, "/v/x.mp4", 0, "1.0"])
    result = invoke("sweep-threshold", run, "--objective", "precision>=1.0")
    assert result.exit_code == 5
    assert result.stderr.startswith("error: no threshold in the grid meets precision >= 1")


def test_no_video_is_decoded_by_train_sweep_or_evaluate(syn, tmp_path, monkeypatch):
    import av
    import decord

    from harmcache.video import decode

    def refuse(*args, **kwargs):
        raise AssertionError("stage two must not open a video")

    monkeypatch.setattr(decode.VideoSource, "__init__", refuse)
    monkeypatch.setattr(decord, "VideoReader", refuse)
    monkeypatch.setattr(av, "open", refuse)
    out = tmp_path / "no-decode"
    train = ["--cache", syn.cache.root, "--labels", syn.labels_csv, "--out", out, "--epochs", "1"]
    steps = [
        ["train", *train],
        ["sweep-threshold", out, "--bootstrap", "50"],
        ["evaluate", out],
        ["evaluate", out, "--labels", syn.labels_csv],
    ]
    for args in steps:
        result = invoke(*args)
        assert result.exit_code == 0, (args, result.output)


def test_predict_scores_videos_and_prints_a_timeline(syn, runs, monkeypatch, tmp_path):
    """extract_with_specs is the extraction team's API; here it reports cached videos."""
    from harmcache.extract import pipeline

    root, _ = runs
    calls = {}

    def fake_extract(paths, cache_dir, specs, *, device="cpu", weights_dir=None):
        calls.update(paths=paths, cache_dir=cache_dir, specs=specs)
        known = dict(zip(syn.paths, syn.ids))
        return ExtractSummary(
            [
                InputResult(str(p), known[str(p)], "cached")
                if str(p) in known
                else InputResult(str(p), None, "failed", "unreadable", "cannot open the container")
                for p in paths
            ]
        )

    monkeypatch.setattr(pipeline, "extract_with_specs", fake_extract, raising=False)
    missing = tmp_path / "broken.mp4"
    result = invoke("predict", syn.paths[0], syn.paths[-1], missing, "--run", root / "lightgbm",
                    "--segments", "4", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert calls["specs"]["clip"] == syn.families["clip"].spec
    assert str(calls["cache_dir"]) == str(syn.cache.root.resolve())
    out = last_json(result)["predictions"]
    assert [p["status"] for p in out] == ["scored", "scored", "failed"]
    assert out[0]["label"] == "harmful" and out[1]["label"] == "safe"  # planted: first 40% harmful
    timeline = out[0]["timeline"]
    assert len(timeline) == 4 and timeline[-1]["end"] == pytest.approx(out[0]["duration"])
    assert "broken.mp4: failed (unreadable: cannot open the container)" in result.stdout
