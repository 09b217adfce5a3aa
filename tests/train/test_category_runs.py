"""Runs with several categories: one head for all of them, each tuned on the videos labelled
in it, kept per category in the run, and read back by sweep, evaluate, predict and queue. A
one-category run is the same loop with one turn, and reads exactly as a binary run did."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from harmcache.errors import DataError, UsageError
from harmcache.predict import score_videos
from harmcache.train.fit import train
from harmcache.train.rundir import load_run
from harmcache.train.sweep_run import sweep_categories, sweep_threshold
from tests.running import invoke, last_json, ok
from tests.synthetic_cache import build

CATEGORIES = {"fighting": 0.35, "weapons": 0.3, "gore": 0.25}
SETTINGS = {"logreg": {}, "lightgbm": {}, "transformer": {"epochs": 8}, "mil": {"epochs": 8}}


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    """A planted three-category cache; every tenth video's gore cell blank (not labelled)."""
    root = tmp_path_factory.mktemp("multi")
    syn = build(root, 160, categories=CATEGORIES)
    with open(syn.labels_csv, newline="") as f:
        table = list(csv.reader(f))
    for i, row in enumerate(table[1:]):
        if i % 10 == 0:
            row[3] = ""
    with open(syn.labels_csv, "w", newline="") as f:
        csv.writer(f).writerows(table)
    syn.blank = {syn.ids[i] for i in range(0, 160, 10)}
    return syn


@pytest.mark.parametrize("head", list(SETTINGS))
def test_one_head_scores_every_category(multi, tmp_path, head):
    result = train(multi.cache.root, multi.labels_csv, head, tmp_path / "run", **SETTINGS[head])
    per = result.metrics["categories"]
    assert list(per) == list(CATEGORIES)
    for name, m in per.items():
        assert m["test"]["auroc"] > 0.9, (head, name, m["test"])
    run = load_run(tmp_path / "run")
    assert run.categories == list(CATEGORIES)
    assert run.head.n_outputs_ == 3
    for rule in run.rules:
        assert rule.path == tmp_path / "run" / "categories" / rule.name
        assert (rule.path / "threshold.json").exists() and rule.calibrator is not None


def test_a_blank_cell_is_masked_not_read_as_0(multi, tmp_path):
    train(multi.cache.root, multi.labels_csv, "logreg", tmp_path / "run")
    run = load_run(tmp_path / "run")
    gore = {row[0] for row in csv.reader(open(run.rule("gore").path / "val_scores.csv"))}
    fighting = {row[0] for row in csv.reader(open(run.rule("fighting").path / "val_scores.csv"))}
    split = {r["video_id"]: r["split"] for r in run.split()}
    val_blank = {v for v in multi.blank if split[v] == "val"}
    assert val_blank, "the fixture must put a blank gore cell in validation"
    assert not val_blank & gore and val_blank <= fighting
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["join"]["categories"]["gore"]["not_labelled"] == len(multi.blank)
    with open(tmp_path / "run" / "val_category_scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sum(1 for r in rows if r["gore"] == "") == len(val_blank)


def test_each_category_is_swept_evaluated_and_predicted(multi, tmp_path):
    run_dir = tmp_path / "run"
    train(multi.cache.root, multi.labels_csv, "logreg", run_dir)
    with pytest.raises(UsageError, match="has 3 categories .* name one with --category"):
        sweep_threshold(run_dir, "recall>=0.9", plot=False)
    chosen = sweep_threshold(run_dir, "recall>=0.9", category="weapons", plot=False)
    run = load_run(run_dir)
    assert run.rule("weapons").threshold["objective"] == "recall>=0.9"
    assert run.rule("weapons").cut == chosen.threshold
    assert run.rule("gore").threshold["objective"] == "f1"
    assert set(sweep_categories(run_dir, objective="f1", plot=False)) == set(CATEGORIES)

    evaluation = ok("evaluate", run_dir, "--json")
    table = last_json(evaluation)
    assert set(table["categories"]) == set(CATEGORIES) and table["subset"] == "test"
    assert table["macro"]["f1"] > 0.8
    assert "fighting" in evaluation.output and "macro:" in evaluation.output

    ids = [r["video_id"] for r in run.split() if r["split"] == "test"][:4]
    predictions = score_videos(run, run.open_cache(), ids, 4)
    for vid in ids:
        p = predictions[vid]
        assert [v.category for v in p.categories] == list(CATEGORIES)
        assert p.action in ("remove", "allow") and p.decided_by in CATEGORIES
        truth = multi.targets[multi.ids.index(vid)]
        if truth.any():
            assert p.action == "remove"


def test_the_queue_lists_what_the_run_acts_on(multi, tmp_path):
    run_dir = tmp_path / "run"
    train(multi.cache.root, multi.labels_csv, "logreg", run_dir)
    out = tmp_path / "queue.csv"
    result = ok("queue", "--run", run_dir, "--out", out, "--json")
    summary = last_json(result)
    assert summary["scored"] == 160 and summary["bands"] == "thresholds"
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == summary["remove"] + summary["review"] > 0
    assert {r["action"] for r in rows} <= {"remove", "review"}
    probabilities = [float(r["probability"]) for r in rows]
    assert probabilities == sorted(probabilities, reverse=True)  # all remove: by probability
    for r in rows:
        assert float(r["start"]) <= float(r["end"])
    planted = sum(int(y) for y in multi.targets.ravel())
    assert abs(len(rows) - planted) <= 0.1 * planted

    labelled = tmp_path / "half.csv"
    with open(multi.labels_csv, newline="") as f:
        table = list(csv.reader(f))
    with open(labelled, "w", newline="") as f:
        csv.writer(f).writerows(table[:81])
    jsonl = ok("queue", "--run", run_dir, "--out", tmp_path / "q.jsonl", "--format", "jsonl",
               "--only-unlabeled", labelled)  # fmt: skip
    assert "80 labelled left out" in jsonl.output
    queued = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert queued and not {q["video_id"] for q in queued} & set(multi.ids[:80])
    bad = invoke("queue", "--run", run_dir, "--out", tmp_path / "q.x", "--format", "xml")
    assert bad.exit_code != 0 and "--format must be csv or jsonl" in bad.output


def test_a_category_without_both_classes_on_a_side_is_refused(tmp_path):
    syn = build(tmp_path, 40, categories={"a": 0.5, "rare": 0.0})
    with pytest.raises(DataError, match="category rare has 0 positive|category rare: the train"):
        train(syn.cache.root, syn.labels_csv, "logreg", tmp_path / "run")


def test_a_label_column_and_a_harmful_column_give_the_same_run(tmp_path):
    syn = build(tmp_path, 60)
    named = tmp_path / "named.csv"
    text = syn.labels_csv.read_text().replace("path,label", "path,harmful", 1)
    named.write_text(text)
    train(syn.cache.root, syn.labels_csv, "logreg", tmp_path / "a")
    train(syn.cache.root, named, "logreg", tmp_path / "b")
    for name in ("val_scores.csv", "test_scores.csv", "split.csv", "threshold.json"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text(), name
    # The one category keeps a binary run's layout: its files at the top, no categories/.
    assert not (tmp_path / "a" / "categories").exists()
    run = load_run(tmp_path / "a")
    assert run.categories == ["harmful"] and run.head.threshold_ == run.rules[0].cut
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert "categories" not in a and a["test"]["f1"] == a["test"]["f1"]
    np.testing.assert_equal(run.head.n_outputs_, 1)
