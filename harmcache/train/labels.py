"""Labels, read from a CSV or a folder of class folders, and joined to cached videos.

Labels live outside the cache and are joined at train time (see docs/cache-format.md#no-labels).
The join is where an earlier experiment went wrong (see docs/design-notes.md#joining-labels): its
label keys never matched the clip ids, 0 labels matched, and the model learned from zeros. So every
join reports its counts, and a join that matches nothing stops with an example of the keys on each
side.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from harmcache.errors import DataError, UsageError
from harmcache.store.cache import FeatureCache
from harmcache.train.holdings import Holdings
from harmcache.train.matching import match_rows, no_match_message

KEY_COLUMNS = ("path", "video", "file", "video_id", "sha256", "id")
"""Accepted names for the column that identifies a video: a path, or a video id (SHA-256)."""
VIDEO_SUFFIXES = {
    ".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp",
    ".ts",
}  # fmt: skip
SPLIT_VALUES = ("train", "val", "test")


@dataclass(slots=True)
class LabelRow:
    """One labelled video as the user wrote it."""

    key: str
    """A path (absolute, or relative to the labels file) or a video id."""
    label: int
    split: str | None
    where: str
    """Where it came from, for messages: 'labels.csv:12' or 'folder/violence'."""
    base: Path
    """Folder that relative paths are resolved against first."""
    group: str | None = None
    """Related clips (same source video, same uploader) share a group and a side of the split."""


@dataclass(slots=True)
class LabeledVideo:
    """A cached video with its label; several label rows (duplicate files) may share it."""

    video_id: str
    label: int
    paths: list[str]
    split: str | None = None
    group: str | None = None


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
        }


def without_rows_line(extractor: str, n: int) -> str:
    return f"videos with no {extractor} rows (masked): {n}"


# --- reading -----------------------------------------------------------------------------------
def read_labels(source: str | Path, positive: list[str] | None = None) -> list[LabelRow]:
    """Label rows from a CSV (`path,label[,split][,group]`) or a folder with one subfolder per
    class.

    Labels are 0/1, or names: with `positive` (case-insensitive) the listed names are 1 and
    every other name is 0."""
    source = Path(source)
    if not source.exists():
        raise UsageError(f"labels not found: {source}")
    if source.is_dir():
        raw = _read_folder(source)
    else:
        raw = _read_csv(source)
    if not raw:
        raise DataError(f"no labels in {source}")
    return _binarise(raw, positive, source)


def _read_csv(path: Path) -> list[tuple[str, str, str | None, str, str | None]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read labels {path}: {exc}") from None
    reader = csv.reader(text.splitlines())
    columns = [c.strip().lower() for c in next(reader, [])]
    key_col = next((c for c in KEY_COLUMNS if c in columns), None)
    if key_col is None or "label" not in columns:
        raise DataError(
            f"{path.name} needs a header with columns path,label[,split][,group]; found: "
            f"{', '.join(columns) or 'nothing'}"
        )
    # Columns by position (a plain reader: a dict per row costs more than the rest of the
    # join over a million rows); a short row's missing cells read as empty.
    at = {
        name: columns.index(name)
        for name in (key_col, "label", "split", "group")
        if name in columns
    }

    def cell(row: list[str], name: str) -> str:
        i = at.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""

    rows = []
    for line, row in enumerate(reader, start=2):
        key = cell(row, key_col)
        if not key:
            continue
        split = cell(row, "split").lower() or None
        group = cell(row, "group") or None
        rows.append((key, cell(row, "label"), split, f"{path.name}:{line}", group))
    if "split" in columns:
        _check_split_column(rows, path)
    return rows


def _check_split_column(rows: list, path: Path) -> None:
    bad = [(w, s) for _, _, s, w, _ in rows if s is not None and s not in SPLIT_VALUES]
    if bad:
        where, value = bad[0]
        raise DataError(f"{where}: split must be train, val or test, got {value!r}")
    empty = [w for _, _, s, w, _ in rows if s is None]
    if empty and len(empty) < len(rows):
        raise DataError(
            f"{path.name}: the split column is empty in {len(empty)} rows (e.g. {empty[0]}); "
            "fill it in every row or drop the column"
        )


def _read_folder(folder: Path) -> list[tuple[str, str, str | None, str, str | None]]:
    rows = []
    for class_dir in sorted(
        p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
    ):
        for file in sorted(class_dir.rglob("*")):
            if file.is_file() and file.suffix.lower() in VIDEO_SUFFIXES:
                rows.append(
                    (
                        str(file.resolve()),
                        class_dir.name,
                        None,
                        f"{folder.name}/{class_dir.name}",
                        None,
                    )
                )
    return rows


def _binarise(raw: list, positive: list[str] | None, source: Path) -> list[LabelRow]:
    base = source if source.is_dir() else source.parent
    values = Counter(label for _, label, _, _, _ in raw)
    if positive:
        names = {p.strip().lower() for p in positive if p.strip()}
        found = {v.lower() for v in values}
        if not names & found:
            raise DataError(
                f"none of the labels is one of --positive {','.join(sorted(names))}; "
                f"labels found: {_show(values)}"
            )
        to_int = {v: int(v.lower() in names) for v in values}
    else:
        to_int = {}
        for v in values:
            number = _as_binary(v)
            if number is None:
                raise DataError(
                    f"label {v!r} is not 0/1; pass --positive NAME[,NAME] to say which label "
                    f"names are harmful (labels found: {_show(values)})"
                )
            to_int[v] = number
    return [
        LabelRow(key, to_int[label], split, where, base, group)
        for key, label, split, where, group in raw
    ]


def _as_binary(value: str) -> int | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if number in (0.0, 1.0) else None


def _show(values: Counter) -> str:
    return ", ".join(f"{v or '<empty>'} ({n})" for v, n in values.most_common(8))


# --- joining -----------------------------------------------------------------------------------
@dataclass
class LabelJoin:
    """The labelled cached videos, how the join went, and where each family holds them."""

    videos: list[LabeledVideo]
    report: JoinReport
    holdings: Holdings


def join_labels(rows: list[LabelRow], cache: FeatureCache) -> tuple[list[LabeledVideo], JoinReport]:
    """Match label rows to cached videos by path (resolved to absolute on both sides) or by
    video id. Raises DataError when nothing matches, or when one video gets two labels."""
    joined = match_labels(rows, cache)
    return joined.videos, joined.report


def match_labels(rows: list[LabelRow], cache: FeatureCache) -> LabelJoin:
    """`join_labels`, keeping the index's answers (`Holdings`) for the steps after it."""
    matches = match_rows(rows, cache)
    by_id = [m[0] for m in matches.found if m is not None and m[1] is None]
    first_path = cache.index.first_paths(by_id) if by_id else {}
    report = JoinReport(label_rows=len(rows))
    videos: dict[str, LabeledVideo] = {}
    origin: dict[str, str] = {}
    for row, match in zip(rows, matches.found):
        if match is None:
            report.unmatched_rows += 1
            if len(report.unmatched_examples) < 5:
                report.unmatched_examples.append(row.key)
            continue
        report.matched_rows += 1
        vid, path = match
        path = path or first_path.get(vid, vid)
        if vid not in videos:
            videos[vid] = LabeledVideo(vid, row.label, [path], row.split, row.group)
            origin[vid] = row.where
            continue
        report.duplicate_rows += 1
        _check_duplicate(row, videos[vid], origin[vid])
        if path not in videos[vid].paths:
            videos[vid].paths.append(path)
    if not videos:
        raise DataError(no_match_message(rows, cache))
    report.matched_videos = len(videos)
    # Every matched video is held by some family, so the rest of the cache is a difference of
    # counts: no set of the cache's videos is built.
    report.unlabelled_cached = cache.index.distinct_videos() - len(videos)
    ordered = sorted(videos.values(), key=lambda v: v.video_id)
    return LabelJoin(ordered, report, matches.holdings)


def _check_duplicate(row: LabelRow, known: LabeledVideo, origin: str) -> None:
    """A second row for the same bytes must agree with the first on label, split and group."""
    vid = known.video_id
    if known.label != row.label:
        raise DataError(
            f"{row.where} and {origin} are the same video ({vid[:12]}, identical bytes) "
            f"with different labels ({row.label} vs {known.label}); fix one of them"
        )
    if known.split != row.split:
        raise DataError(
            f"{row.where} and {origin} are the same video ({vid[:12]}) but are put in "
            f"different splits ({row.split} vs {known.split})"
        )
    if known.group != row.group:
        raise DataError(
            f"{row.where} and {origin} are the same video ({vid[:12]}) but are put in "
            f"different groups ({row.group or '<none>'} vs {known.group or '<none>'}); "
            "give identical files one group"
        )


def check_classes(videos: list[LabeledVideo]) -> None:
    """Training needs both classes."""
    counts = Counter(v.label for v in videos)
    if len(counts) < 2:
        ((label, n),) = counts.items()
        name = "harmful (1)" if label == 1 else "safe (0)"
        raise DataError(f"all {n} matched videos are labelled {name}; training needs both classes")
