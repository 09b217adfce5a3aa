"""Scoring new videos with a run: extract them with the run's exact backbone specs (cached
videos are not decoded again), then score each video and each segment of it. This is the one
place where the two stages meet: stage one on new videos, then a stage-two run on them.

A segment score is the head applied to only the rows whose timestamp falls inside the
segment: the video's duration is cut into `segments` equal parts, and each part is scored with
its CLIP/YOLO frames and the SlowFast windows centred in it (the other rows are masked out, as
padding is). It says where in the video the head sees harm. It is the same head on a shorter
input, so it is not calibrated like the video score; compare segments with each other.

A head with its own snippet scores (the MIL head) gives its timeline instead: one entry per
covered snippet of its grid (`snippet_seconds`, 1 s by default), and `segments` is not used.

Spans are the merged runs of consecutive timeline entries scoring at or above the run's
threshold, with their peak score. The threshold is the one chosen for the raw video score and is
applied unchanged to the raw timeline scores: for the MIL head both are sigmoids of logits on
one scale, and the video logit is the mean of the top-k snippet logits, so a video labelled
harmful always has a span (its best snippet scores at least the video score). A safe video may
still show short spans; a video's label decides, its spans say where to look.

A run with several categories gives, per video, each category's score, probability, action
(remove, review or allow, under the run's certified policy or else each category's threshold:
`harmcache.verdicts`) and spans, and the video's overall action: the most severe over its
categories, with the category that decided it.

With a hash bank (`bank`), each video is first matched against known content
(`harmcache.known.match`, vPDQ's rule): its PDQ hashes are made in the same decode pass, and a
match is reported before the model's score, with the entry's label and where in the video it
was found. A match is certain in a way a score is not; the score is still given.

Every prediction states its operating point: the threshold, the objective it was chosen for
and, when `sweep-threshold --confidence` certified it, the guarantee. The label compares the
raw score with the threshold; `probability` is the calibrated score, for people to read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from harmcache.decisions.operating_point import LABELS, OperatingPoint, bounds_line
from harmcache.errors import DataError
from harmcache.heads.data import SequenceData
from harmcache.heads.timeline import merge_spans
from harmcache.known.bank import HashBank
from harmcache.store.family import Family
from harmcache.train.config import PredictConfig
from harmcache.train.localize import DEFAULT_SEGMENTS, segment_table
from harmcache.train.rundir import Run, load_run
from harmcache.verdicts import CategoryVerdict, verdicts
from harmcache.video.image import is_image


@dataclass
class Segment:
    """One equal part of a video's duration, scored on its own rows."""

    start: float
    end: float
    score: float | None
    """None when no row of any modality falls in the segment."""


@dataclass
class Prediction:
    """One video's score, probability, label at the run's threshold, and timeline."""

    path: str
    video_id: str | None
    status: str
    """scored | failed"""
    score: float | None = None
    """The head's raw score: the label is harmful when score >= threshold."""
    probability: float | None = None
    """The score calibrated on the run's validation videos; None if trained without."""
    label: str | None = None
    """harmful | safe"""
    threshold: float | None = None
    objective: str | None = None
    """What the threshold was chosen for: f1, recall>=0.9, ..."""
    guarantee: dict | None = None
    """For a certified threshold: objective, confidence, bound, method, n_positive, n_negative."""
    duration: float | None = None
    timeline: list[Segment] = field(default_factory=list)
    spans: list[dict] = field(default_factory=list)
    """Merged intervals where the timeline is at or above the threshold: start, end, peak."""
    reason: str | None = None
    message: str | None = None
    categories: list[CategoryVerdict] | None = None
    """A run with several categories: one verdict each (then score and label are None)."""
    action: str | None = None
    """remove | review | allow: the most severe over the categories"""
    decided_by: str | None = None
    """The category that decided `action` (the highest score among those at its severity)."""
    known: list[dict] | None = None
    """With a bank: each bank entry the video matches (label, query_share, bank_share, spans)."""

    def to_json(self) -> dict:
        """A JSON-ready dict (the timeline as a list of dicts)."""
        return asdict(self)

    def lines(self) -> list[str]:
        """What `harmcache predict` prints for the video: its label and operating point, the
        spans at or above the threshold, and the timeline with a bar per entry."""
        if self.status != "scored":
            return [f"{self.path}: failed ({self.reason}: {self.message})"]
        known = [
            f"{self.path}: KNOWN {m['label']} ({m['bank_share']:.0%} of the known clip found, at "
            + ", ".join(f"{_clock(a)}-{_clock(b)}" for a, b in m["spans"])
            + ")"
            for m in self.known or []
        ]
        if self.categories is not None:
            return known + self._category_lines()
        out = known + [f"{self.path}: {self.label} {self.operating_point()}"]
        if self.spans:
            out.append(f"  spans at or above {self.threshold:.4g}:")
            for span in self.spans:
                out.append(
                    f"    {_clock(span['start'])}-{_clock(span['end'])} peak {span['peak']:.3f}"
                )
        else:
            out.append(f"  no span at or above {self.threshold:.4g}")
        out.append("  timeline:")
        for s in self.timeline:
            if s.score is None:
                out.append(f"  {_clock(s.start)}-{_clock(s.end)}      -")
            else:
                bar = "#" * round(s.score * 20)
                out.append(f"  {_clock(s.start)}-{_clock(s.end)} {s.score:.3f} {bar}")
        return out

    def _category_lines(self) -> list[str]:
        out = [f"{self.path}: {self.action} (decided by {self.decided_by})"]
        for v in self.categories or []:
            prob = "uncalibrated" if v.probability is None else f"p={v.probability:.4f}"
            spans = ", ".join(f"{_clock(s['start'])}-{_clock(s['end'])}" for s in v.spans)
            action = v.action if v.acts else "no action (outside the policy)"
            out.append(
                f"  {v.category}: {action} {prob} (score {v.score:.4f})"
                + (f" at {spans}" if spans else "")
            )
        return out

    def operating_point(self) -> str:
        """p=<calibrated probability> (score <raw>, threshold <t> for <objective>[; guarantee])."""
        prob = "uncalibrated" if self.probability is None else f"p={self.probability:.4f}"
        line = (
            f"{prob} (score {self.score:.4f}, threshold {self.threshold:.4g} for {self.objective}"
        )
        g = self.guarantee
        if g is not None:
            bounds = bounds_line(g["bounds"] or {}, digits=3, sep=", ")
            line += f"; certified at {g['confidence']:.0%} confidence: {bounds}"
        return line + ")"


def _clock(seconds: float) -> str:
    """mm:ss.s"""
    return f"{int(seconds // 60):02d}:{seconds % 60:04.1f}"


def predict(
    videos: list[str | Path],
    run_dir: str | Path,
    cache_dir: str | Path | None = None,
    *,
    device: str = "cpu",
    weights_dir: str | Path | None = None,
    segments: int = DEFAULT_SEGMENTS,
    bank: str | Path | None = None,
) -> list[Prediction]:
    """Extract (if needed) and score `videos` with the run in `run_dir`; with `bank`, match
    them against its known content first."""
    from harmcache.extract.api import resolve_device
    from harmcache.extract.pipeline import extract_with_specs
    from harmcache.extract.respec import default_spec

    device = resolve_device(device)  # bad flags fail before any run or video is read
    PredictConfig(
        cache_dir=cache_dir, device=device, weights_dir=weights_dir, segments=segments, bank=bank
    )
    run = load_run(run_dir)
    known = None if bank is None else HashBank(bank)  # not a bank: fail before extracting
    cache_path = Path(cache_dir or run.config["cache"])
    specs = {ex: f["spec"] for ex, f in run.features.items()}
    if known is not None:
        specs.setdefault("pdq", default_spec("pdq"))
    summary = extract_with_specs(
        [Path(v) for v in videos],
        cache_path,
        specs,
        device=device,
        weights_dir=Path(weights_dir) if weights_dir else None,
    )
    out: list[Prediction] = []
    ok: list[tuple[int, str]] = []
    for item in summary.inputs:
        if item.status == "failed" or item.video_id is None:
            out.append(
                Prediction(
                    item.path, item.video_id, "failed", reason=item.reason, message=item.message
                )
            )
        else:
            ok.append((len(out), item.video_id))
            out.append(Prediction(item.path, item.video_id, "scored"))
    if not ok:
        first = out[0] if out else None
        why = f" ({first.reason}: {first.message})" if first else ""
        raise DataError(f"none of the {len(out)} videos could be scored{why}")
    ids = list(dict.fromkeys(vid for _, vid in ok))
    scored = score_videos(run, run.open_cache(cache_path), ids, segments)
    if known is not None:
        matched = known_matches(run.open_cache(cache_path), specs["pdq"], ids, known)
        for position, vid in ok:
            out[position].known = matched.get(vid, [])
    for position, vid in ok:
        p = scored[vid]
        if p.status == "failed":
            out[position].status, out[position].reason = p.status, p.reason
            out[position].message = p.message
            continue
        for name in (
            "score", "probability", "label", "threshold", "objective", "guarantee",
            "categories", "action", "decided_by",
        ):  # fmt: skip
            setattr(out[position], name, getattr(p, name))
        if p.categories is not None:
            out[position].duration = p.duration
        elif is_image(out[position].path):
            still(out[position])
        else:
            out[position].duration = p.duration
            out[position].timeline = p.timeline
            out[position].spans = p.spans
    return out


def known_matches(cache, spec: dict, video_ids: list[str], bank: HashBank) -> dict:
    """video id → the bank entries its cached PDQ hashes match (`Match.to_json`)."""
    from harmcache.known.match import match_many
    from harmcache.known.sources import cached_hashes

    family = Family.from_spec(spec)
    videos = list(cached_hashes(cache, family, video_ids))
    found = match_many([v.hashes for v in videos], bank)
    return {v.video_id: [m.to_json() for m in ms] for v, ms in zip(videos, found)}


def still(p: Prediction) -> None:
    """A still image has no time axis: its timeline is its one score at 0 s, and its span is
    that instant when the score reaches the threshold."""
    p.duration = 0.0
    p.timeline = [Segment(0.0, 0.0, p.score)]
    p.spans = merge_spans([0.0], [0.0], [p.score], p.threshold)


def score_videos(run: Run, cache, video_ids: list[str], segments: int = DEFAULT_SEGMENTS) -> dict:
    """video id → Prediction (score, label and segment timeline) for cached videos."""
    data = run.load_data(cache, video_ids)
    if len(run.rules) > 1:
        return _category_predictions(run, data, segments)
    point = OperatingPoint.from_json(run.threshold)
    threshold = point.threshold
    scores = run.score(data)
    probabilities = run.probability(scores)
    labels = point.apply(scores)
    timelines = video_timelines(run, data, segments)
    guarantee = point.guarantee
    rowless = ~np.any([m.mask.any(axis=1) for m in data.modalities.values()], axis=0)
    out = {
        vid: Prediction(
            path="",
            video_id=vid,
            status="scored",
            score=float(scores[i]),
            probability=None if probabilities is None else float(probabilities[i]),
            label=LABELS[labels[i]],
            threshold=threshold,
            objective=run.threshold.get("objective"),
            guarantee=guarantee,
            duration=float(data.duration[i]),
            timeline=timelines[i],
            spans=merge_spans(
                [t.start for t in timelines[i] if t.score is not None],
                [t.end for t in timelines[i] if t.score is not None],
                [t.score for t in timelines[i] if t.score is not None],
                threshold,
            ),
        )
        for i, vid in enumerate(video_ids)
    }
    for i in np.flatnonzero(rowless):
        features = ", ".join(sorted(data.modalities))
        out[video_ids[i]] = Prediction(
            "",
            video_ids[i],
            "failed",
            reason="no_rows",
            message=f"no rows in the run's features ({features}): nothing to score, e.g. a "
            "video without a sound track for an audio-only run",
        )
    return out


def _category_predictions(run: Run, data: SequenceData, segments: int) -> dict:
    """video id → Prediction with a verdict per category and the overall action."""
    per_video, actions = verdicts(run, data, segments)
    return {
        vid: Prediction(
            path="",
            video_id=vid,
            status="scored",
            duration=float(data.duration[i]),
            categories=per_video[i],
            action=str(actions.action[i]),
            decided_by=str(actions.decided_by[i]),
        )
        for i, vid in enumerate(data.video_ids)
    }


def video_timelines(run: Run, data: SequenceData, segments: int) -> list[list[Segment]]:
    """Per video, the head's own snippet timeline when it has one (MIL), else `segments`
    equal parts of its duration, each scored on its own rows."""
    if hasattr(run.head, "timelines"):
        return [
            [Segment(float(a), float(b), float(c)) for a, b, c in zip(t.start, t.end, t.score)]
            for t in run.head.timelines(data)
        ]
    return segment_scores(run, data, segments)


def segment_scores(run: Run, data: SequenceData, segments: int) -> list[list[Segment]]:
    """Per video, `segments` equal parts of its duration, each scored on its own rows."""
    if segments < 1:
        return [[] for _ in range(len(data))]
    starts, ends, scores, has = segment_table(run.score, data, segments)
    return [
        [
            Segment(
                float(starts[i, k]), float(ends[i, k]), float(scores[i, k]) if has[i, k] else None
            )
            for k in range(segments)
        ]
        for i in range(len(data))
    ]
