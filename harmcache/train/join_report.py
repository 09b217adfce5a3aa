"""How labels met the cache: the counts every join reports (see `harmcache.train.labels`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from harmcache.train.categories import CategoryCounts


@dataclass
class JoinReport:
    """How labels met the cache."""

    label_rows: int = 0
    matched_rows: int = 0
    matched_videos: int = 0
    unmatched_rows: int = 0
    unmatched_examples: list[str] = field(default_factory=list)
    unlabelled_cached: int = 0
    """Cached videos (in any family) that no label names."""
    duplicate_rows: int = 0
    """Matched rows whose bytes another row already labelled (same video id)."""
    missing_features: dict[str, int] = field(default_factory=dict)
    """Matched videos dropped because a chosen family lacks them, per extractor."""
    left_out: dict[str, str] = field(default_factory=dict)
    """Extractors left out of a default feature set, and why (e.g. identical for all videos)."""
    no_rows: int = 0
    """Matched videos dropped because no chosen family holds a row for them (an audio-only
    feature set and a video without a sound track)."""
    without_rows: dict[str, int] = field(default_factory=dict)
    """Kept videos with no rows in a modality (no sound track; SlowFast on a still image),
    per extractor: masked in stage two, never zeros presented as data."""
    categories: dict[str, CategoryCounts] = field(default_factory=dict)
    """Per category, over the matched videos: positives, negatives, not labelled."""
    near_duplicates: dict = field(default_factory=dict)
    """How near-duplicate videos were grouped (`harmcache.train.near_duplicates`)."""
    near_duplicate_lines: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"labels: {self.label_rows} rows; {self.matched_rows} matched "
            f"{self.matched_videos} cached videos",
            f"labels with no cached video: {self.unmatched_rows}"
            + (f" (e.g. {', '.join(self.unmatched_examples[:3])})" if self.unmatched_rows else ""),
            f"cached videos with no label: {self.unlabelled_cached}",
        ]
        if self.duplicate_rows:
            out.append(
                f"rows that are byte-identical to another labelled row: {self.duplicate_rows}"
            )
        for extractor, n in sorted(self.missing_features.items()):
            out.append(f"dropped for lacking {extractor} features: {n}")
        if self.no_rows:
            out.append(f"dropped for having no rows in any chosen modality: {self.no_rows}")
        for extractor, n in sorted(self.without_rows.items()):
            out.append(without_rows_line(extractor, n))
        if len(self.categories) > 1:
            for name, c in self.categories.items():
                out.append(
                    f"  {name}: {c.positive} positive, {c.negative} negative, "
                    f"{c.not_labelled} not labelled"
                )
        out += self.near_duplicate_lines
        for extractor, why in sorted(self.left_out.items()):
            out.append(
                f"warning: left {extractor} features out: {why}; they carry no information "
                f"(check its extraction, or pass --features to choose explicitly)"
            )
        return out

    def to_json(self) -> dict:
        return {
            "label_rows": self.label_rows,
            "matched_rows": self.matched_rows,
            "matched_videos": self.matched_videos,
            "unmatched_rows": self.unmatched_rows,
            "unmatched_examples": self.unmatched_examples[:5],
            "unlabelled_cached": self.unlabelled_cached,
            "duplicate_rows": self.duplicate_rows,
            "missing_features": dict(sorted(self.missing_features.items())),
            "left_out": dict(sorted(self.left_out.items())),
            "no_rows": self.no_rows,
            "without_rows": dict(sorted(self.without_rows.items())),
            "categories": {name: c.to_json() for name, c in self.categories.items()},
            "near_duplicates": self.near_duplicates,
        }


def without_rows_line(extractor: str, n: int) -> str:
    return f"videos with no {extractor} rows (masked): {n}"
