"""Evaluating a run with several categories: one `Evaluation` per category, each at its own
threshold on the videos labelled in it, their macro and micro averages, and, when the run has
a certified policy (policy.json), whether each certified band held on these videos.

The subsets are those of `evaluate`: the test split (rescored from the cache), the validation
scores saved at training time (tuned on), or a labels file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harmcache.decisions.category_scores import POLICY_FILE, CategoryScores
from harmcache.decisions.report import fmt
from harmcache.decisions.rule import counts_at
from harmcache.errors import DataError
from harmcache.train.categories import Taxonomy
from harmcache.train.evaluate import Evaluation, category_evaluation
from harmcache.train.labels import match_labels, read_label_set, targets_of
from harmcache.train.per_category import averages
from harmcache.train.rundir import (
    CATEGORIES_FILE,
    TEST_CATEGORY_SCORES_FILE,
    Run,
    read_json,
)

BAND_METRIC = {"remove": "precision", "review": "recall"}
"""What each band of a policy promises about the videos at or above its threshold."""


@dataclass
class CategoryEvaluation:
    """Every category of a run on one set of videos."""

    run: Path
    subset: str
    categories: dict[str, Evaluation]
    averages: dict
    """macro (mean over categories) and micro (pooled counts) precision, recall and F1"""
    bands: dict[str, dict[str, dict]] = field(default_factory=dict)
    """category → band → {threshold, target, value, held} for the policy's certified bands"""
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The per-category table, the averages and the policy's bands."""
        out = [f"note: {note}" for note in self.notes]
        out.append(f"{self.subset}: each category at its own threshold")
        width = max(8, *(len(c) for c in self.categories))
        out.append(
            f"{'category':{width}} {'videos':>6} {'pos':>5} {'thr':>6} {'prec':>7} {'recall':>7} "
            f"{'f1':>7} {'auroc':>7} {'ap':>7} {'ece':>7}"
        )
        for name, e in self.categories.items():
            m, cal = e.metrics, e.calibration or {}
            ece = cal.get("ece", cal.get("ece_raw"))
            out.append(
                f"{name:{width}} {m['n']:6d} {m['n_positive']:5d} {m['threshold']:6.3f} "
                f"{m['precision']:7.4f} {m['recall']:7.4f} {m['f1']:7.4f} {fmt(m['auroc']):>7} "
                f"{fmt(m['ap']):>7} {fmt(ece):>7}"
            )
        a = self.averages
        out.append(
            f"macro: precision {a['macro']['precision']:.4f} recall {a['macro']['recall']:.4f} "
            f"F1 {a['macro']['f1']:.4f} AUROC {fmt(a['macro']['auroc'])}; micro: precision "
            f"{a['micro']['precision']:.4f} recall {a['micro']['recall']:.4f} F1 "
            f"{a['micro']['f1']:.4f}"
        )
        for name, bands in self.bands.items():
            for band, b in bands.items():
                verdict = "held" if b["held"] else "did NOT hold"
                out.append(
                    f"policy {name} {band} at {b['threshold']:.4g}: {b['metric']} "
                    f"{fmt(b['value'])} (certified >= {b['target']:g}) {verdict} on {self.subset}"
                )
        return out

    def to_json(self) -> dict:
        return {
            "run": str(self.run),
            "subset": self.subset,
            "categories": {name: e.to_json() for name, e in self.categories.items()},
            "macro": self.averages["macro"],
            "micro": self.averages["micro"],
            "bands": self.bands,
            "notes": self.notes,
        }


def evaluate_categories(
    run: Run,
    *,
    labels: str | Path | None,
    cache_dir: str | Path | None,
    subset: str | None,
    plot: str | Path | bool,
) -> CategoryEvaluation:
    """`evaluate` for a run with several categories (see the module docstring)."""
    if labels is not None:
        targets, scores, name, notes = _on_labels(run, Path(labels), cache_dir)
    elif subset == "val" or not (run.path / TEST_CATEGORY_SCORES_FILE).exists():
        if subset == "test":
            raise DataError(f"{run.path} has no test split; train with --test-fraction above 0")
        saved = _saved(run, "val")
        targets, scores, name = saved.labels, saved.scores, "validation"
        notes = ["the thresholds were chosen on these videos: expect optimistic numbers"]
    else:
        saved = _saved(run, "test")
        by_path = {r["path"]: r["video_id"] for r in run.split() if r["split"] == "test"}
        ids = [by_path[p] for p in saved.ids]
        targets, name, notes = saved.labels, "test", []
        scores = run.category_scores_cache(run.open_cache(cache_dir), ids)
    per: dict[str, Evaluation] = {}
    for k, rule in enumerate(run.rules):
        keep = ~np.isnan(targets[:, k])
        if not keep.any():
            notes.append(f"no {name} video is labelled in {rule.name}: it is not evaluated")
            continue
        y = targets[keep, k].astype(np.int64)
        per[rule.name] = category_evaluation(run, rule, y, scores[keep, k], name, [], plot)
    if not per:
        raise DataError(f"no {name} video is labelled in any of the run's categories")
    bands = _bands_held(run, targets, scores)
    shown = averages([{name: e.metrics} for e in per.values()], name)
    return CategoryEvaluation(run.path, name, per, shown, bands, notes)


def _saved(run: Run, side: str) -> CategoryScores:
    from harmcache.decisions.category_scores import CATEGORY_SCORES_FILE

    file = CATEGORY_SCORES_FILE if side == "val" else TEST_CATEGORY_SCORES_FILE
    saved = CategoryScores.read_csv(run.path / file)
    if saved.categories != run.categories:
        raise DataError(f"{run.path / file} does not hold the run's categories; retrain the run")
    return saved


def _on_labels(run: Run, labels: Path, cache_dir) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """The run's categories' labels (NaN where the file says nothing) and scores of the
    labelled videos that have the run's features."""
    cache = run.open_cache(cache_dir)
    record = read_json(run.path / CATEGORIES_FILE)
    taxonomy = Taxonomy.parse(record["taxonomy"]) if record.get("taxonomy") else None
    label_set = read_label_set(labels, None, taxonomy)
    joined = match_labels(label_set.rows, cache, label_set.categories)
    notes = joined.report.lines()
    missing = run.missing(cache, [v.video_id for v in joined.videos])
    lacking = set().union(*missing.values()) if missing else set()
    videos = [v for v in joined.videos if v.video_id not in lacking]
    if lacking:
        notes.append(f"{len(lacking)} labelled videos lack this run's features and are left out")
    if not videos:
        raise DataError(f"none of the labelled videos has this run's features in {cache.root}")
    found = targets_of(videos)
    targets = np.full((len(videos), len(run.rules)), np.nan)
    for k, name in enumerate(run.categories):
        if name in label_set.categories:
            targets[:, k] = found[:, label_set.categories.index(name)]
        else:
            notes.append(f"{labels.name} has no {name} column: {name} is not evaluated")
    scores = run.category_scores_cache(cache, [v.video_id for v in videos], check=True)
    return targets, scores, f"labels:{labels}", notes


def _bands_held(run: Run, targets: np.ndarray, scores: np.ndarray) -> dict:
    """For each certified band of the run's policy: its metric on these videos, and whether
    it met the certified level."""
    path = run.path / POLICY_FILE
    if not path.exists():
        return {}
    policy = json.loads(path.read_text(encoding="utf-8"))
    out: dict[str, dict[str, dict]] = {}
    for name, bands in policy.get("categories", {}).items():
        if name not in run.categories:
            continue
        k = run.categories.index(name)
        keep = ~np.isnan(targets[:, k])
        y, s = targets[keep, k].astype(np.int64), scores[keep, k]
        for band, cert in bands.items():
            if not cert.get("certified") or band not in BAND_METRIC or not len(y):
                continue
            metric = BAND_METRIC[band]
            counts = counts_at(y, s, np.array([cert["threshold"]]))
            value = float(getattr(counts, metric)[0])
            out.setdefault(name, {})[band] = {
                "threshold": cert["threshold"],
                "metric": metric,
                "target": cert["level"],
                "value": value,
                "held": bool(value >= cert["level"] - 1e-12),
            }
    return out
