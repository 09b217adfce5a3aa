"""A run's actions per category: what `predict` and `queue` say about each video.

Each category has a remove threshold and, under a certified policy, a lower review threshold
(`harmcache.decisions.actions`). The bands come from the run's policy.json when
`sweep-threshold --policy` certified one: a refused band never fires, nor does a category the
policy does not name. Without a policy each
category's own threshold (threshold.json) is its remove threshold and nothing is reviewed.

A category's spans are the merged runs of timeline entries at or above the lowest threshold
that acts on it (review, else remove), on the video's own clock: the MIL head's snippets, else
equal segments of the video, each scored on its own rows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from harmcache.decisions.actions import ACTIONS, Actions, Bands, bands_of, decide_bands
from harmcache.decisions.category_scores import POLICY_FILE
from harmcache.heads.data import SequenceData
from harmcache.heads.timeline import merge_spans
from harmcache.train.localize import segment_table
from harmcache.train.rundir import Run


@dataclass
class CategoryVerdict:
    """One category of one video."""

    category: str
    score: float
    """The head's raw score, which the thresholds cut."""
    probability: float | None
    """The score calibrated on the category's validation videos; None if trained without."""
    action: str
    """remove | review | allow"""
    spans: list[dict] = field(default_factory=list)
    """start, end (seconds on the video's clock) and peak of each span that acts."""
    acts: bool = True
    """False when no threshold acts on the category (the policy does not name it, or refused
    its bands): its action is then always allow, whatever its score."""

    def to_json(self) -> dict:
        return asdict(self)


def run_bands(run: Run) -> tuple[Bands, str]:
    """category → (t_review, t_remove), and where the bands came from."""
    path = run.path / POLICY_FILE
    if path.exists():
        bands = bands_of(json.loads(path.read_text(encoding="utf-8")))
        # The policy is the decision: a category it does not name never acts.
        for rule in run.rules:
            bands.setdefault(rule.name, (None, None))
        return bands, "policy"
    return {rule.name: (None, rule.cut) for rule in run.rules}, "thresholds"


def category_actions(run: Run, scores: np.ndarray) -> Actions:
    """The actions of (N, categories) raw scores under the run's bands."""
    bands, _ = run_bands(run)
    ordered = {r.name: bands[r.name] for r in run.rules}
    return decide_bands(ordered, {r.name: scores[:, k] for k, r in enumerate(run.rules)})


def verdicts(
    run: Run, data: SequenceData, segments: int
) -> tuple[list[list[CategoryVerdict]], Actions]:
    """Per video, a verdict per category (with its spans), and the policy's actions."""
    scores = run.score_categories(data)
    actions = category_actions(run, scores)
    bands, _ = run_bands(run)
    timelines = category_timelines(run, data, segments)
    out = []
    for i in range(len(data)):
        row = []
        for k, rule in enumerate(run.rules):
            probability = rule.probability(scores[i : i + 1, k])
            lowest = (
                min(t for t in bands[rule.name] if t is not None)
                if any(t is not None for t in bands[rule.name])
                else np.inf
            )
            start, end, score = timelines[k][i]
            row.append(
                CategoryVerdict(
                    rule.name,
                    float(scores[i, k]),
                    None if probability is None else float(probability[0]),
                    str(actions.per_category[rule.name][i]),
                    merge_spans(start, end, score, lowest) if np.isfinite(lowest) else [],
                    bool(np.isfinite(lowest)),
                )
            )
        out.append(row)
    return out, actions


def category_timelines(run: Run, data: SequenceData, segments: int) -> list[list[tuple]]:
    """[category][video] → (starts, ends, scores) of its timeline entries with rows."""
    head = run.head
    if hasattr(head, "timelines"):
        return [
            [(t.start.tolist(), t.end.tolist(), t.score.tolist()) for t in head.timelines(data, k)]
            for k in range(len(run.rules))
        ]
    out: list[list[tuple]] = [[] for _ in run.rules]
    if segments < 1:
        return [[([], [], []) for _ in range(len(data))] for _ in run.rules]
    starts, ends, scores, has = segment_table(run.score_categories, data, segments)
    for k in range(len(run.rules)):
        for i in range(len(data)):
            keep = has[i]
            out[k].append(
                (starts[i, keep].tolist(), ends[i, keep].tolist(), scores[i, keep, k].tolist())
            )
    return out


SEVERITY = {a: i for i, a in enumerate(ACTIONS)}
