"""Where a head says the harm is, and how well that matches annotated events.

Every head gives each video a timeline (`harmcache.heads.timeline.Timeline`):

- a head with its own snippet scores (`timelines(X)`, the MIL head) gives those, on its grid;
- any other head is scored on `segments` equal parts of each video's duration, each part on
  its own rows (the CLIP/YOLO frames and SlowFast windows whose timestamps fall inside it);
  a part no row falls in is left out of the timeline.

`localization` scores those timelines per second against an events CSV
(`harmcache.metrics.segment_metrics`); `join_events` maps the CSV's keys to cached videos the way
labels are joined.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harmcache import metrics
from harmcache.errors import DataError
from harmcache.heads.base import EpochCallback, EpochReport, Head, log_epoch
from harmcache.heads.data import SequenceData
from harmcache.heads.timeline import Timeline
from harmcache.store.cache import FeatureCache
from harmcache.train.config import DEFAULT_SEGMENTS
from harmcache.train.events import Interval, read_events
from harmcache.train.labels import LabelRow
from harmcache.train.matching import match_rows


@dataclass
class Events:
    """An events CSV joined to a cache: video id → its harmful intervals."""

    source: Path
    by_video: dict[str, list[Interval]]
    unmatched: list[str] = field(default_factory=list)
    """Keys of the CSV that name no cached video (up to all of them)."""

    def notes(self) -> list[str]:
        if not self.unmatched:
            return []
        return [
            f"{len(self.unmatched)} video(s) of {self.source.name} are not in the cache and are "
            f"left out, e.g. {self.unmatched[0]!r}"
        ]


def join_events(csv_path: str | Path, cache: FeatureCache) -> Events:
    """Read an events CSV and join its keys to `cache`'s videos like labels: a path absolute or
    relative to the CSV's folder (or the working directory), or a video id. Raises DataError
    when no key names a cached video."""
    path = Path(csv_path)
    raw = read_events(path)
    rows = [LabelRow(key, 1, None, f"{path.name}", path.parent) for key in raw]
    found = match_rows(rows, cache).found
    by_video: dict[str, list[Interval]] = {}
    unmatched = []
    for (key, intervals), match in zip(raw.items(), found):
        if match is None:
            unmatched.append(key)
            continue
        vid = match[0]
        by_video[vid] = sorted({*by_video.get(vid, []), *intervals})
    if not by_video:
        raise DataError(
            f"none of the {len(raw)} videos in {path} is in the cache {cache.root} "
            f"(e.g. {next(iter(raw))!r}); name them by path (absolute, or relative to the "
            "events file) or by video id"
        )
    return Events(path, by_video, unmatched)


def timeline_kind(head) -> str:
    """What a head's timeline is made of, for the record: its snippets, or equal segments."""
    return "snippets" if hasattr(head, "timelines") else f"{DEFAULT_SEGMENTS} segments"


def head_timelines(head, data: SequenceData, segments: int = DEFAULT_SEGMENTS) -> list[Timeline]:
    """Per video, its timeline from `head`: the head's own snippet timeline when it has one,
    else `segment_timelines`."""
    if hasattr(head, "timelines"):
        return head.timelines(data)
    return segment_timelines(lambda part: head.predict_proba(part)[:, 1], data, segments)


def segment_timelines(score, data: SequenceData, segments: int) -> list[Timeline]:
    """Per video, `segments` equal parts of its duration, each scored by `score(part)` (a
    `SequenceData` → (N,) scores) on its own rows; parts without rows are left out."""
    starts, ends, scores, has = segment_table(score, data, segments)
    return [
        Timeline(starts[i, has[i]], ends[i, has[i]], scores[i, has[i]]) for i in range(len(data))
    ]


def segment_table(score, data: SequenceData, segments: int):
    """(starts, ends, scores, has_rows), each (N, segments): the equal parts of each video's
    duration and the score of each on its own rows (the last part is closed on the right, so
    a row at exactly the duration is kept). A `score` that gives (N, categories) makes
    `scores` (N, segments, categories)."""
    n = len(data)
    edges = data.duration[:, None] * np.linspace(0, 1, segments + 1)[None, :]
    scores = None
    has = np.zeros((n, segments), dtype=bool)
    for k in range(segments):
        end = edges[:, k + 1] if k < segments - 1 else np.full(n, np.inf)
        part = data.window(edges[:, k], end)
        for m in part.modalities.values():
            has[:, k] |= m.mask.any(axis=1)
        got = np.asarray(score(part))
        if scores is None:
            scores = np.zeros((n, segments, *got.shape[1:]))
        scores[:, k] = got
    if scores is None:
        scores = np.zeros((n, 0))
    return edges[:, :-1], edges[:, 1:], scores, has


def localization(
    events: dict[str, list[Interval]], timelines: list[Timeline], data: SequenceData
) -> dict:
    """`segment_metrics` (segment_auroc, segment_ap, n_seconds, n_positive_seconds) of these
    videos' timelines against `events` (video id → intervals; a video without events has no
    harmful second), plus how many of the videos have events."""
    ids = list(data.video_ids)
    out = metrics.segment_metrics(
        {v: events.get(v, []) for v in ids},
        dict(zip(ids, timelines, strict=True)),
        {v: float(d) for v, d in zip(ids, data.duration, strict=True)},
    )
    out["n_videos"] = len(ids)
    out["n_videos_with_events"] = sum(1 for v in ids if events.get(v))
    return out


def with_localization(
    head: Head, on_epoch: EpochCallback | None, events: dict, val: SequenceData
) -> EpochCallback:
    """`on_epoch` with each validated epoch's per-second localization on the validation videos
    added to its report: how well the timeline finds the events as training goes."""
    report_to = on_epoch or log_epoch

    def per_epoch(report: EpochReport) -> None:
        if report.rows:
            # Mid-fit the head is not fitted yet by sklearn's rules; its weights score already.
            unfitted = not hasattr(head, "classes_")
            head.classes_ = np.array([0, 1])
            try:
                report.localization = localization(events, head_timelines(head, val), val)
            finally:
                if unfitted:
                    del head.classes_
        report_to(report)

    return per_epoch
