"""The review queue: every cached video a run would remove or send to review, as the rows a
labelling tool reads.

`review_queue` scores every video the cache holds with the run's features (no decoding:
stage two only), leaves out the labelled ones when asked, and decides each category by the
run's bands (`harmcache.verdicts`: its certified policy, else each category's threshold).
One row per (video, category) whose action is remove or review, with the span of the video
that scored highest for that category (start and end on the video's own clock), ordered by
action (remove first), then by probability (highest first).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from harmcache.decisions.actions import ALLOW, REMOVE, REVIEW
from harmcache.errors import DataError, UsageError
from harmcache.paths import shown
from harmcache.store.atomic import write_text_atomic
from harmcache.train.labels import match_labels, read_label_set
from harmcache.train.localize import DEFAULT_SEGMENTS
from harmcache.train.reading import SCORE_CHUNK
from harmcache.train.rundir import Run, load_run
from harmcache.verdicts import category_actions, run_bands, verdicts

FORMATS = ("csv", "jsonl")
SEVERITY = {"remove": REMOVE, "review": REVIEW, "allow": ALLOW}


@dataclass
class QueueRow:
    """One (video, category) for a person to look at."""

    path: str
    video_id: str
    category: str
    action: str
    """remove | review"""
    probability: float
    """The calibrated probability (the raw score for a run trained without a calibrator)."""
    score: float
    start: float
    end: float
    """The span that scored highest for the category, in seconds on the video's clock (the
    whole video when no span reaches the band)."""


@dataclass
class Queue:
    rows: list[QueueRow]
    scored: int
    """Cached videos scored."""
    left_out: int
    """Labelled videos left out (`only_unlabeled`)."""
    bands: str
    """policy | thresholds: where the actions came from."""

    def counts(self) -> dict[str, int]:
        return {a: sum(1 for r in self.rows if r.action == a) for a in ("remove", "review")}

    def write(self, out: str | Path, fmt: str = "csv") -> Path:
        """The queue as CSV (a header, then one row each) or JSON lines, written atomically."""
        if fmt not in FORMATS:
            raise UsageError(f"--format must be csv or jsonl, got {fmt!r}")
        text = io.StringIO()
        if fmt == "csv":
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(list(QueueRow.__dataclass_fields__))
            writer.writerows(list(asdict(r).values()) for r in self.rows)
        else:
            text.writelines(json.dumps(asdict(r)) + "\n" for r in self.rows)
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, text.getvalue())
        return out


def review_queue(
    run_dir: str | Path,
    cache_dir: str | Path | None = None,
    *,
    only_unlabeled: str | Path | None = None,
    segments: int = DEFAULT_SEGMENTS,
) -> Queue:
    """The queue of the run in `run_dir` over every video of `cache_dir` (default: the run's
    cache) that has the run's features; `only_unlabeled`: a labels file whose videos are left
    out."""
    run = load_run(run_dir)
    cache = run.open_cache(cache_dir)
    held = None
    for fam in run.families.values():
        ids = set(cache.index.entries(fam.name))
        held = ids if held is None else held & ids
    video_ids = sorted(held or ())
    if not video_ids:
        raise DataError(f"{cache.root} holds no video with this run's features")
    left_out = 0
    if only_unlabeled is not None:
        label_set = read_label_set(only_unlabeled)
        labelled = {v.video_id for v in match_labels(label_set.rows, cache).videos}
        left_out = sum(1 for v in video_ids if v in labelled)
        video_ids = [v for v in video_ids if v not in labelled]
    if not video_ids:
        return Queue([], 0, left_out, run_bands(run)[1])
    scores = run.category_scores_cache(cache, video_ids)
    actions = category_actions(run, scores)
    acting = np.flatnonzero(actions.action != "allow")
    rows = _rows(run, cache, [video_ids[i] for i in acting], segments)
    rows.sort(key=lambda r: (-SEVERITY[r.action], -r.probability, r.path, r.category))
    return Queue(rows, len(video_ids), left_out, run_bands(run)[1])


def _rows(run: Run, cache, video_ids: list[str], segments: int) -> list[QueueRow]:
    """The queue rows of the videos some category acts on, read `SCORE_CHUNK` at a time."""
    paths = cache.index.first_paths(video_ids)
    out = []
    for start in range(0, len(video_ids), SCORE_CHUNK):
        chunk = video_ids[start : start + SCORE_CHUNK]
        data = run.load_data(cache, chunk)
        per_video, _ = verdicts(run, data, segments)
        for i, vid in enumerate(chunk):
            for v in per_video[i]:
                if v.action == "allow":
                    continue
                best = max(v.spans, key=lambda s: s["peak"], default=None)
                span = (best["start"], best["end"]) if best else (0.0, float(data.duration[i]))
                out.append(
                    QueueRow(
                        shown(paths.get(vid, vid)),
                        vid,
                        v.category,
                        v.action,
                        v.score if v.probability is None else v.probability,
                        v.score,
                        *span,
                    )  # fmt: skip
                )
    return out
