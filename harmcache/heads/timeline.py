"""Where in a video the harm is: a per-snippet timeline and the spans it flags.

A timeline is a video's snippets in time order, each with a start, an end (seconds) and a score.
`merge_spans` turns it into the intervals a moderator reviews, like a moderation API's segment
mode: consecutive snippets scoring at or above the threshold become one span, with its peak
score. Pure NumPy, so predict, evaluate and the heads share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harmcache.decisions.rule import flags
from harmcache.errors import UsageError

GAP_TOLERANCE = 1e-6
"""Seconds of float slack when deciding that one snippet starts where the previous one ends."""


@dataclass
class Timeline:
    """One video's scored snippets, in time order."""

    start: np.ndarray
    """(T,) seconds."""
    end: np.ndarray
    """(T,) seconds."""
    score: np.ndarray
    """(T,) probability of harm in each snippet."""

    def __len__(self) -> int:
        return len(self.score)

    def spans(self, threshold: float, *, max_gap: float = 0.0) -> list[dict]:
        """`merge_spans` of this timeline."""
        return merge_spans(self.start, self.end, self.score, threshold, max_gap=max_gap)

    def to_json(self) -> list[dict]:
        """`[{"start", "end", "score"}, ...]`, the shape of predict's JSON timeline."""
        return [
            {"start": float(s), "end": float(e), "score": float(p)}
            for s, e, p in zip(self.start, self.end, self.score, strict=True)
        ]


def merge_spans(
    starts: np.ndarray,
    ends: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    *,
    max_gap: float = 0.0,
) -> list[dict]:
    """Intervals `[{"start", "end", "peak"}]` where the scores are at or above `threshold`.

    Snippets (given in time order) that reach the threshold are merged while each starts at
    most `max_gap` seconds after the previous one ends, so a snippet left out of the timeline
    (no features there) splits a span unless `max_gap` bridges it. `peak` is a span's highest
    score. Overlapping snippets merge; the span ends at the latest end among them."""
    starts = np.asarray(starts, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if not (starts.ndim == ends.ndim == scores.ndim == 1) or not (
        len(starts) == len(ends) == len(scores)
    ):
        raise UsageError(
            "starts, ends and scores must be 1-D and equally long; got shapes "
            f"{starts.shape}, {ends.shape}, {scores.shape}"
        )
    if np.any(ends < starts):
        i = int(np.flatnonzero(ends < starts)[0])
        raise UsageError(f"snippet {i} ends ({ends[i]}) before it starts ({starts[i]})")
    if np.any(np.diff(starts) < 0):
        raise UsageError("snippets must be in time order (starts never decreasing)")
    if not np.isfinite(threshold):
        raise UsageError(f"threshold must be a finite number, got {threshold}")
    if not max_gap >= 0:
        raise UsageError(f"max_gap must be at least 0 seconds, got {max_gap}")
    spans: list[dict] = []
    previous = -2
    # A loop over the flagged snippets only: thousands at most, and overlaps chain plainly.
    for i in np.flatnonzero(flags(scores, threshold)):
        span = spans[-1] if spans else None
        if (
            span is not None
            and i == previous + 1
            and starts[i] - span["end"] <= max_gap + GAP_TOLERANCE
        ):
            span["end"] = max(span["end"], float(ends[i]))
            span["peak"] = max(span["peak"], float(scores[i]))
        else:
            spans.append(
                {"start": float(starts[i]), "end": float(ends[i]), "peak": float(scores[i])}
            )
        previous = i
    return spans
