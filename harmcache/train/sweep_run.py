"""Choosing a run's decision threshold again: sweep (or certify on) the validation scores it
saved, then rewrite threshold.json (and the metrics at the new threshold in metrics.json) and
draw threshold.png. The same sweep runs on any `label,score` CSV, with no run at all.

The options are `harmcache.decisions.spec.SweepSpec`'s; the sweep and the certificate live in
`harmcache.decisions`; this module applies them to a run or a scores file.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harmcache import metrics
from harmcache.decisions.operating_point import OperatingPoint
from harmcache.decisions.plot import plot as plot_sweep
from harmcache.decisions.spec import SweepSpec
from harmcache.decisions.sweep import SweepResult
from harmcache.errors import DataError, UsageError
from harmcache.train.per_category import averages
from harmcache.train.rundir import (
    METRICS_FILE,
    PLOT_FILE,
    TEST_SCORES_FILE,
    THRESHOLD_FILE,
    VAL_SCORES_FILE,
    category_dir,
    read_categories,
    read_val_scores,
    write_json,
)
from harmcache.user_files import read_user_text


def sweep_threshold(
    run_dir: str | Path,
    objective: str | None = None,
    *,
    spec: SweepSpec | None = None,
    plot: bool = True,
    category: str | None = None,
    **options,
) -> SweepResult:
    """Choose the threshold of the run in `run_dir` on its saved validation scores.

    The options are `SweepSpec`'s, with its defaults (the CLI's): `objective` (f1, f<beta>,
    recall>=R or precision>=P), `grid` (start:stop:step, a comma list or "scores"),
    `bootstrap` (1000), `seed`, `review_band`, and `confidence`: with it (e.g. 0.9) the
    threshold is certified instead (`harmcache.decisions.certify`): recall>=R or precision>=P,
    optionally with ',flagged<=F'; the result carries the certificate, and
    `NotCertifiedError` (a DataError) says how many more harmful videos would be needed when
    none passes (threshold.json is then left as it was).

    `category`: which category of a run with several (`sweep_categories` sweeps them all);
    a one-category run needs none. Rewrites the category's threshold.json and its metrics in
    metrics.json, draws threshold.png unless `plot` is False, and returns the sweep."""
    spec = SweepSpec.build(spec, objective=objective, **options)
    run = Path(run_dir)
    names = read_categories(run)
    if category is None and len(names) > 1:
        raise UsageError(
            f"{run} has {len(names)} categories ({', '.join(names)}): name one with "
            "--category, or sweep them all (sweep_categories)"
        )
    if category is not None and category not in names:
        raise UsageError(f"{run} has no category {category!r}; its categories: {', '.join(names)}")
    name = category or names[0]
    path = category_dir(run, name, len(names))
    if not (path / VAL_SCORES_FILE).exists():
        raise UsageError(f"{run} is not a run directory: {VAL_SCORES_FILE} is missing")
    _, _, y, scores = read_val_scores(path / VAL_SCORES_FILE)
    result = spec.choose(y, scores)
    picture = None
    if plot:
        plot_sweep(result, y, scores, path / PLOT_FILE)
        picture = PLOT_FILE
    write_json(path / THRESHOLD_FILE, OperatingPoint.record(result, VAL_SCORES_FILE, picture))
    metrics_path = run / METRICS_FILE
    if metrics_path.exists():
        data = json.loads(metrics_path.read_text())
        entry = data if len(names) == 1 else data["categories"][name]
        entry["val"] = metrics.summary(y, scores, result.threshold)
        if (path / TEST_SCORES_FILE).exists():
            _, _, y_test, s_test = read_val_scores(path / TEST_SCORES_FILE)
            entry["test"] = metrics.summary(y_test, s_test, result.threshold)
        if len(names) > 1:  # the averages follow the category's new threshold
            per = list(data["categories"].values())
            data["test"], data["val"] = averages(per, "test"), averages(per, "val")
        write_json(metrics_path, data)
    return result


def sweep_categories(
    run_dir: str | Path, *, spec: SweepSpec | None = None, plot: bool = True, **options
) -> dict[str, SweepResult]:
    """`sweep_threshold` for every category of the run, with the same settings."""
    names = read_categories(Path(run_dir))
    return {
        name: sweep_threshold(run_dir, spec=spec, plot=plot, category=name, **options)
        for name in names
    }


# --- scores from anywhere ------------------------------------------------------------------------


@dataclass
class ScoresFile:
    """`label,score[,group]` rows read from a CSV."""

    path: Path
    labels: np.ndarray
    scores: np.ndarray
    groups: list[str] | None

    def notes(self) -> list[str]:
        """What the user should know about these scores before trusting a certificate."""
        if self.groups is None:
            return []
        sizes = Counter(self.groups)
        shared = sum(1 for n in sizes.values() if n > 1)
        if not shared:
            return []
        return [
            f"{shared} of {len(sizes)} groups hold several rows; a certificate treats rows as "
            "independent, so with related rows it is optimistic: keep one row per group for a "
            "strict guarantee"
        ]


def read_scores(path: str | Path) -> ScoresFile:
    """A CSV with columns label (0/1) and score (a number), and optionally group."""
    path = Path(path)
    text = read_user_text(path, "--scores", encoding="utf-8-sig")
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    reader.fieldnames = columns
    if "label" not in columns or "score" not in columns:
        raise DataError(
            f"{path.name} needs a header with columns label,score[,group]; found: "
            f"{', '.join(columns) or 'nothing'}"
        )
    labels, scores, groups = [], [], []
    for line, row in enumerate(reader, start=2):
        label, score = (row.get("label") or "").strip(), (row.get("score") or "").strip()
        if not label and not score:
            continue
        if label not in ("0", "1", "0.0", "1.0"):
            raise DataError(f"{path.name}:{line}: label must be 0 or 1, got {label!r}")
        try:
            value = float(score)
        except ValueError:
            raise DataError(f"{path.name}:{line}: score must be a number, got {score!r}") from None
        if not np.isfinite(value):
            raise DataError(f"{path.name}:{line}: score must be finite, got {score!r}")
        labels.append(int(float(label)))
        scores.append(value)
        groups.append((row.get("group") or "").strip())
    if not labels:
        raise DataError(f"{path.name}: no rows")
    return ScoresFile(
        path,
        np.array(labels, dtype=np.int64),
        np.array(scores, dtype=np.float64),
        groups if "group" in columns else None,
    )


def sweep_scores(
    path: str | Path,
    objective: str | None = None,
    *,
    spec: SweepSpec | None = None,
    plot: str | Path | None = None,
    **options,
) -> tuple[SweepResult, ScoresFile]:
    """`sweep_threshold` on a `label,score[,group]` CSV from anywhere: writes nothing but the
    plot, if a path is given."""
    spec = SweepSpec.build(spec, objective=objective, **options)
    data = read_scores(path)
    result = spec.choose(data.labels, data.scores)
    if plot is not None:
        plot_sweep(result, data.labels, data.scores, plot)
    return result, data
