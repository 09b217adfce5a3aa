"""A one-category run's outputs, digested, in the tree this runs from (run it from an old
checkout, then from this one, and compare the two files: they must be equal):

    python bench/refactor_ab/one_category.py OUT.json

For each head: a seeded synthetic cache (tests/synthetic_cache.py), `train`, then a certified
sweep (recall>=0.8 at 80 % confidence). The digest keeps what a user relies on: the split, the
validation and test scores, threshold.json, calibration.json and metrics.json, less timings
and file paths (the two trees build their caches in different folders).
"""

import csv
import json
import sys
import tempfile
from pathlib import Path

from harmcache.train.fit import train
from harmcache.train.sweep_run import sweep_threshold
from tests.synthetic_cache import build

HEADS = {"logreg": {}, "lightgbm": {}, "transformer": {"epochs": 6}, "mil": {"epochs": 6}}


def rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return [[c for i, c in enumerate(r) if i != 1] for r in csv.reader(f)]  # drop the path


def digest(run: Path) -> dict:
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.pop("seconds")
    metrics["join"].pop("categories", None)
    for epoch in metrics["history"]:
        epoch.pop("seconds", None)
    return {
        "split": rows(run / "split.csv"),
        "val_scores": rows(run / "val_scores.csv"),
        "test_scores": rows(run / "test_scores.csv"),
        "threshold": json.loads((run / "threshold.json").read_text()),
        "calibration": json.loads((run / "calibration.json").read_text()),
        "metrics": metrics,
    }


def main(out: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        syn = build(root / "data", 200)
        result = {}
        for head, settings in HEADS.items():
            run = root / f"run-{head}"
            train(syn.cache.root, syn.labels_csv, head, run, **settings)
            sweep_threshold(run, "recall>=0.8", confidence=0.8, plot=False)
            result[head] = digest(run)
    Path(out).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
