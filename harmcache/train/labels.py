"""Labels, read from a CSV or a folder of class folders, and joined to cached videos.

Labels live outside the cache and are joined at train time (see docs/cache-format.md#no-labels).
A file holds one category (`path,label`) or several, one 0/1 column each, with blank cells not
labelled (`harmcache.train.categories`).
The join is where an earlier experiment went wrong (see docs/design-notes.md#joining-labels): its
label keys never matched the clip ids, 0 labels matched, and the model learned from zeros. So every
join reports its counts, and a join that matches nothing stops with an example of the keys on each
side.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harmcache.errors import DataError, UsageError
from harmcache.store.cache import FeatureCache
from harmcache.train.categories import (
    HARMFUL,
    Taxonomy,
    apply_taxonomy,
    count_categories,
    overall_label,
)
from harmcache.train.holdings import Holdings
from harmcache.train.join_report import JoinReport
from harmcache.train.matching import match_rows, no_match_message

KEY_COLUMNS = ("path", "video", "file", "video_id", "sha256", "id")
"""Accepted names for the column that identifies a video: a path, or a video id (SHA-256)."""
VIDEO_SUFFIXES = {
    ".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp",
    ".ts",
}  # fmt: skip
SPLIT_VALUES = ("train", "val", "test")
META_COLUMNS = ("split", "group")


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
    targets: tuple[float, ...] = ()
    """One 0/1 per category (NaN: not labelled); `(label,)` for a one-category file."""

    def __post_init__(self) -> None:
        if not self.targets:
            self.targets = (float(self.label),)


@dataclass(slots=True)
class LabeledVideo:
    """A cached video with its label; several label rows (duplicate files) may share it.
    `label` is the video's one bit (harmful in some category), `targets` its categories."""

    video_id: str
    label: int
    paths: list[str]
    split: str | None = None
    group: str | None = None
    targets: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not self.targets:
            self.targets = (float(self.label),)


# --- reading -----------------------------------------------------------------------------------
@dataclass
class LabelSet:
    """The rows of a labels source and the categories their `targets` follow."""

    rows: list[LabelRow]
    categories: list[str]
    taxonomy: Taxonomy | None = None


def read_labels(source: str | Path, positive: list[str] | None = None) -> list[LabelRow]:
    """Label rows from a CSV (`path,label[,split][,group]`, or one 0/1 column per category) or
    a folder with one subfolder per class.

    Labels are 0/1, or names: with `positive` (case-insensitive) the listed names are 1 and
    every other name is 0."""
    return read_label_set(source, positive).rows


def read_label_set(
    source: str | Path, positive: list[str] | None = None, taxonomy: Taxonomy | None = None
) -> LabelSet:
    """`read_labels` with the categories: `harmful` for a `label` column or a folder, else the
    file's category columns, with the parents of `taxonomy` derived or checked."""
    source = Path(source)
    if not source.exists():
        raise UsageError(f"labels not found: {source}")
    if source.is_dir():
        raw, columns = _read_folder(source), [HARMFUL]
    else:
        raw, columns = _read_csv(source)
    if not raw:
        raise DataError(f"no labels in {source}")
    if columns == [HARMFUL]:
        if taxonomy is not None:
            raise UsageError(
                "--taxonomy needs one label column per category; this file has one label column"
            )
        return LabelSet(_binarise(raw, positive, source), [HARMFUL])
    if positive:
        raise UsageError(
            "--positive names the harmful values of a label column; this file has one 0/1 "
            f"column per category ({', '.join(columns)})"
        )
    return _category_rows(raw, columns, source, taxonomy)


def _read_csv(path: Path) -> tuple[list[tuple], list[str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read labels {path}: {exc}") from None
    reader = csv.reader(text.splitlines())
    columns = [c.strip().lower() for c in next(reader, [])]
    key_col = next((c for c in KEY_COLUMNS if c in columns), None)
    label_cols = (
        ["label"]
        if "label" in columns
        else [c for c in columns if c and c not in KEY_COLUMNS and c not in META_COLUMNS]
    )
    if key_col is None or not label_cols:
        raise DataError(
            f"{path.name} needs a header with columns path,label[,split][,group] (or one 0/1 "
            f"column per category); found: {', '.join(columns) or 'nothing'}"
        )
    # Columns by position (a plain reader: a dict per row costs more than the rest of the
    # join over a million rows); a short row's missing cells read as empty.
    at = {name: columns.index(name) for name in (key_col, *META_COLUMNS) if name in columns}
    label_at = [columns.index(c) for c in label_cols]

    def cell(row: list[str], i: int | None) -> str:
        return row[i].strip() if i is not None and i < len(row) else ""

    rows = []
    for line, row in enumerate(reader, start=2):
        key = cell(row, at[key_col])
        if not key:
            continue
        split = cell(row, at.get("split")).lower() or None
        group = cell(row, at.get("group")) or None
        cells = [cell(row, i) for i in label_at]
        label = cells[0] if len(cells) == 1 else tuple(cells)
        rows.append((key, label, split, f"{path.name}:{line}", group))
    if "split" in columns:
        _check_split_column(rows, path)
    return rows, [HARMFUL] if label_cols == ["label"] else label_cols


def _category_rows(
    raw: list[tuple], columns: list[str], source: Path, taxonomy: Taxonomy | None
) -> LabelSet:
    """Rows of a file with one 0/1 column per category (blank: not labelled)."""
    values = np.full((len(raw), len(columns)), math.nan)
    for i, (_, cells, _, where, _) in enumerate(raw):
        cells = cells if isinstance(cells, tuple) else (cells,)
        for k, value in enumerate(cells):
            if value == "":
                continue
            number = _as_binary(value)
            if number is None:
                raise DataError(
                    f"{where}: {columns[k]} must be 0, 1 or blank (not labelled), got {value!r}; "
                    "every column but path, split and group is a category (for class names, "
                    "call the column label and pass --positive NAME)"
                )
            values[i, k] = number
    where = [r[3] for r in raw]
    if taxonomy is not None:
        columns, values = apply_taxonomy(columns, values, where, taxonomy)
    labelled = ~np.isnan(values).all(axis=1)
    if not labelled.any():
        raise DataError(f"every category cell of {source.name} is blank; nothing is labelled")
    base = source.parent
    rows = [
        LabelRow(key, overall_label(t), split, w, base, group, tuple(t.tolist()))
        for (key, _, split, w, group), t, keep in zip(raw, values, labelled)
        if keep
    ]
    return LabelSet(rows, columns, taxonomy)


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


def _read_folder(folder: Path) -> list[tuple]:
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
    categories: list[str] = field(default_factory=lambda: [HARMFUL])


def join_labels(rows: list[LabelRow], cache: FeatureCache) -> tuple[list[LabeledVideo], JoinReport]:
    """Match label rows to cached videos by path (resolved to absolute on both sides) or by
    video id. Raises DataError when nothing matches, or when one video gets two labels."""
    joined = match_labels(rows, cache)
    return joined.videos, joined.report


def match_labels(
    rows: list[LabelRow], cache: FeatureCache, categories: list[str] | None = None
) -> LabelJoin:
    """`join_labels`, keeping the index's answers (`Holdings`) for the steps after it.
    `categories` name the rows' targets (default: the one category `harmful`)."""
    categories = categories or [HARMFUL]
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
            videos[vid] = LabeledVideo(vid, row.label, [path], row.split, row.group, row.targets)
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
    report.categories = count_categories(categories, targets_of(ordered))
    return LabelJoin(ordered, report, matches.holdings, categories)


def targets_of(videos: list[LabeledVideo]) -> np.ndarray:
    """(videos, categories) float: 0, 1, or NaN where not labelled."""
    if not videos:
        return np.zeros((0, 1))
    return np.array([v.targets for v in videos], dtype=np.float64)


def _check_duplicate(row: LabelRow, known: LabeledVideo, origin: str) -> None:
    """A second row for the same bytes must agree with the first on label, split and group."""
    vid = known.video_id
    if not _same_targets(known.targets, row.targets):
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


def _same_targets(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all((x == y) or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b))


def check_classes(videos: list[LabeledVideo]) -> None:
    """Training needs both classes."""
    counts = Counter(v.label for v in videos)
    if len(counts) < 2:
        ((label, n),) = counts.items()
        name = "harmful (1)" if label == 1 else "safe (0)"
        raise DataError(f"all {n} matched videos are labelled {name}; training needs both classes")
