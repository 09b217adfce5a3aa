"""Spans: consecutive snippets at or above the threshold merge into one interval with its peak."""

from __future__ import annotations

import numpy as np
import pytest

from harmcache.errors import UsageError
from harmcache.heads.timeline import Timeline, merge_spans


def grid(scores: list[float], seconds: float = 1.0) -> tuple[np.ndarray, np.ndarray, list]:
    start = np.arange(len(scores)) * seconds
    return start, start + seconds, scores


@pytest.mark.parametrize(
    "scores, expected",
    [
        ([], []),
        ([0.1, 0.2, 0.3], []),
        ([0.9, 0.8, 0.7], [(0, 3, 0.9)]),
        ([0.5], [(0, 1, 0.5)]),  # at the threshold counts
        ([0.1, 0.6, 0.9, 0.2, 0.7, 0.1], [(1, 3, 0.9), (4, 5, 0.7)]),
        ([0.7, 0.1, 0.1, 0.1, 0.8], [(0, 1, 0.7), (4, 5, 0.8)]),
        ([0.1, float("nan"), 0.9], [(2, 3, 0.9)]),  # no score is never flagged
    ],
)
def test_merging(scores, expected):
    spans = merge_spans(*grid(scores), 0.5)
    assert [(s["start"], s["end"], s["peak"]) for s in spans] == [
        (pytest.approx(a), pytest.approx(b), pytest.approx(p)) for a, b, p in expected
    ]


def test_a_gap_in_the_timeline_splits_a_span_unless_bridged():
    start, end = np.array([0.0, 1.0, 3.0, 4.0]), np.array([1.0, 2.0, 4.0, 5.0])
    scores = [0.9, 0.9, 0.9, 0.6]
    assert merge_spans(start, end, scores, 0.5) == [
        {"start": 0.0, "end": 2.0, "peak": 0.9},
        {"start": 3.0, "end": 5.0, "peak": 0.9},
    ]
    assert merge_spans(start, end, scores, 0.5, max_gap=1.0) == [
        {"start": 0.0, "end": 5.0, "peak": 0.9}
    ]


def test_float_slack_and_overlapping_snippets():
    start = np.array([0.0, 0.1 + 0.2, 0.6])
    end = np.array([0.3, 0.6, 5.0])  # 0.1 + 0.2 != 0.3 in floats, still contiguous
    assert merge_spans(start, end, [1, 1, 1], 0.5) == [{"start": 0.0, "end": 5.0, "peak": 1.0}]
    # A long first snippet covers the next: the span ends at the latest end.
    spans = merge_spans([0.0, 1.0], [10.0, 2.0], [0.8, 0.9], 0.5)
    assert spans == [{"start": 0.0, "end": 10.0, "peak": 0.9}]


def brute_force(start, end, scores, threshold):
    spans, current = [], None
    for s, e, p in zip(start, end, scores):
        if p >= threshold and current is not None and s <= current["end"] + 1e-6:
            current["end"], current["peak"] = max(current["end"], e), max(current["peak"], p)
        elif p >= threshold:
            current = {"start": s, "end": e, "peak": p}
            spans.append(current)
        else:
            current = None
    return spans


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_a_plain_loop(seed):
    rng = np.random.default_rng(seed)
    keep = rng.random(300) < 0.9  # some snippets missing (no features)
    start = (np.arange(300) * 0.5)[keep]
    scores = rng.random(keep.sum())
    got = merge_spans(start, start + 0.5, scores, 0.6)
    assert got == brute_force(start, start + 0.5, scores, 0.6)
    assert all(s["start"] < s["end"] and s["peak"] >= 0.6 for s in got)


def test_timeline_json_and_spans():
    timeline = Timeline(np.array([0.0, 1.0]), np.array([1.0, 1.5]), np.array([0.25, 0.75]))
    assert timeline.to_json() == [
        {"start": 0.0, "end": 1.0, "score": 0.25},
        {"start": 1.0, "end": 1.5, "score": 0.75},
    ]
    assert timeline.spans(0.5) == [{"start": 1.0, "end": 1.5, "peak": 0.75}]
    assert len(timeline) == 2


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (([0, 1], [1], [0.1, 0.2], 0.5), {}, r"must be 1-D and equally long"),
        (([[0]], [[1]], [[0.1]], 0.5), {}, r"must be 1-D and equally long"),
        (([0, 1], [1, 0.5], [0.1, 0.2], 0.5), {}, r"snippet 1 ends \(0.5\) before it starts"),
        (([1, 0], [2, 1], [0.1, 0.2], 0.5), {}, r"snippets must be in time order"),
        (([0], [1], [0.1], float("nan")), {}, r"threshold must be a finite number, got nan"),
        (([0], [1], [0.1], 0.5), {"max_gap": -1}, r"max_gap must be at least 0 seconds"),
    ],
)
def test_bad_input(args, kwargs, message):
    with pytest.raises(UsageError, match=message):
        merge_spans(*args, **kwargs)
