"""Metrics: binary metrics at decision thresholds (counted by `harmcache.decisions.rule`, where a
video is flagged when its score >= threshold), and per-second localization metrics.

Above `harmcache.decisions` only (NumPy; scikit-learn inside `summary`): heads, threshold sweeps
and evaluation all share it without depending on each other."""

from __future__ import annotations

import numpy as np

from harmcache.decisions.grid import DEFAULT_THRESHOLDS
from harmcache.decisions.rule import counts_at
from harmcache.decisions.table import threshold_rows


def summary(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """precision, recall, F1, AUROC, AP and the confusion matrix at `threshold`."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=np.float64)
    row = threshold_rows(y, s, np.array([threshold]))[0]
    both = 0 < y.sum() < len(y)
    return {
        "threshold": float(threshold),
        "precision": row["precision"],
        "recall": row["recall"],
        "f1": row["f1"],
        "auroc": float(roc_auc_score(y, s)) if both else float("nan"),
        "ap": float(average_precision_score(y, s)) if both else float("nan"),
        "confusion": {k: row[k] for k in ("tn", "fp", "fn", "tp")},
        "n": int(len(y)),
        "n_positive": int(y.sum()),
    }


def best_f1(
    y_true: np.ndarray, scores: np.ndarray, grid: np.ndarray = DEFAULT_THRESHOLDS
) -> tuple[float, float]:
    """(best F1, its threshold) on `grid`; the first threshold on ties. For progress reports;
    `harmcache.decisions.sweep` makes the stored choice."""
    f1 = counts_at(y_true, scores, grid).fbeta(1.0)
    i = int(np.argmax(f1))
    return float(f1[i]), float(grid[i])


# --- per-second localization -------------------------------------------------------------------
def _seconds_overlapped(
    start: np.ndarray, end: np.ndarray, n_seconds: int
) -> tuple[np.ndarray, np.ndarray]:
    """(interval index, second) pairs where interval [start, end) overlaps second [i, i + 1):
    start < i + 1 and end > i, i.e. ⌊start⌋ ≤ i < ⌈end⌉, within the video's seconds."""
    lo = np.clip(np.floor(start), 0, n_seconds).astype(np.int64)
    hi = np.clip(np.ceil(end), 0, n_seconds).astype(np.int64)
    size = np.maximum(hi - lo, 0)
    which = np.repeat(np.arange(len(start)), size)
    offset = np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size)
    return which, lo[which] + offset


def _timeline_arrays(timeline) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, end, score) arrays from a `Timeline`-like object, a `(start, end, score)` triple
    or predict's JSON list `[{"start", "end", "score"}]`."""
    if hasattr(timeline, "score"):
        parts = (timeline.start, timeline.end, timeline.score)
    elif isinstance(timeline, tuple) and len(timeline) == 3:
        parts = timeline
    else:
        rows = list(timeline)
        parts = tuple([r[k] for r in rows] for k in ("start", "end", "score"))
    start, end, score = (np.asarray(p, dtype=np.float64).reshape(-1) for p in parts)
    if not len(start) == len(end) == len(score):
        raise ValueError(
            f"a timeline needs as many starts, ends and scores; got {len(start)}, {len(end)}, "
            f"{len(score)}"
        )
    return start, end, score


def whole_seconds(duration: float) -> int:
    """How many whole seconds of a video are scored: [0, 1), [1, 2), ... up to its duration
    (a last partial second is left out)."""
    if not np.isfinite(duration) or duration < 0:
        raise ValueError(f"a video's duration must be a finite number of seconds, got {duration}")
    return int(np.floor(duration + 1e-9))


def segment_scores_per_second(timeline, duration: float) -> np.ndarray:
    """(⌊duration⌋,) a score for each whole second of a video: the highest score among the
    timeline's snippets that overlap it, 0 where none does (no features there).

    `timeline` is a `Timeline`, a `(start, end, score)` triple of arrays or predict's JSON list
    of `{"start", "end", "score"}`."""
    start, end, score = _timeline_arrays(timeline)
    n = whole_seconds(duration)
    out = np.full(n, -np.inf)
    which, second = _seconds_overlapped(start, end, n)
    np.maximum.at(out, second, score[which])
    return np.where(np.isfinite(out), out, 0.0)


def event_seconds(events, duration: float) -> np.ndarray:
    """(⌊duration⌋,) bool: the whole seconds that overlap any `(start, end)` event interval
    (an event ending exactly at i does not reach second i)."""
    n = whole_seconds(duration)
    out = np.zeros(n, dtype=bool)
    pairs = np.asarray(list(events), dtype=np.float64).reshape(-1, 2)
    _, second = _seconds_overlapped(pairs[:, 0], pairs[:, 1], n)
    out[second] = True
    return out


def segment_metrics(events_by_video, timelines, durations) -> dict:
    """Per-second AUROC and AP, the frame-level protocol of XD-Violence and UCF-Crime at one
    sample per second: every whole second of every video in `timelines` is a sample, positive
    when it overlaps one of the video's events, scored by `segment_scores_per_second`.

    All three are mappings keyed by video (path or id, the same keys throughout); a video with
    no entry in `events_by_video` has no harmful second. AUROC and AP are NaN when the seconds
    are all of one class."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    missing = [key for key in timelines if key not in durations]
    if missing:
        raise ValueError(
            f"no duration for {len(missing)} of {len(timelines)} videos with a timeline "
            f"(e.g. {missing[0]!r})"
        )
    labels, scores = [], []
    for key, timeline in timelines.items():
        labels.append(event_seconds(events_by_video.get(key, ()), durations[key]))
        scores.append(segment_scores_per_second(timeline, durations[key]))
    y = np.concatenate(labels) if labels else np.zeros(0, dtype=bool)
    s = np.concatenate(scores) if scores else np.zeros(0)
    both = 0 < y.sum() < len(y)
    return {
        "segment_auroc": float(roc_auc_score(y, s)) if both else float("nan"),
        "segment_ap": float(average_precision_score(y, s)) if both else float("nan"),
        "n_seconds": int(len(y)),
        "n_positive_seconds": int(y.sum()),
    }
