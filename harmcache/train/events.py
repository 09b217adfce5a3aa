"""Annotated harmful intervals, read from an events CSV for per-second evaluation.

`path` (or `video_id`), `start`, `end`: one row per interval in seconds on the video's own time
axis, several rows per video allowed. Keys are kept as written, to be joined to cached videos
the way labels are: a path absolute or relative to the CSV's folder, or a video id (SHA-256).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from harmcache.errors import DataError, UsageError

KEY_COLUMNS = ("path", "video", "file", "video_id", "sha256", "id")
"""Accepted names for the column that identifies a video (as in a labels CSV)."""

Interval = tuple[float, float]


def read_events(csv_path: str | Path) -> dict[str, list[Interval]]:
    """Video key (path or video id, as written) → its `(start, end)` intervals, sorted.

    Every row must name a video and give finite seconds with 0 ≤ start < end; a bad row stops
    the read with its line number."""
    path = Path(csv_path)
    if not path.is_file():
        raise UsageError(f"events not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read events {path}: {exc}") from None
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    reader.fieldnames = columns
    key_col = next((c for c in KEY_COLUMNS if c in columns), None)
    if key_col is None or "start" not in columns or "end" not in columns:
        raise DataError(
            f"{path.name} needs a header with columns path (or video_id),start,end; found: "
            f"{', '.join(columns) or 'nothing'}"
        )
    events: dict[str, list[Interval]] = {}
    for line, row in enumerate(reader, start=2):
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue  # a blank line
        where = f"{path.name}:{line}"
        key = (row.get(key_col) or "").strip()
        if not key:
            raise DataError(f"{where}: the {key_col} column is empty")
        start = _seconds(row.get("start"), "start", where)
        end = _seconds(row.get("end"), "end", where)
        if start < 0:
            raise DataError(f"{where}: start must be at least 0 seconds, got {start}")
        if end <= start:
            raise DataError(f"{where}: end ({end}) must be after start ({start})")
        events.setdefault(key, []).append((start, end))
    if not events:
        raise DataError(f"no events in {path}")
    return {key: sorted(intervals) for key, intervals in events.items()}


def _seconds(raw: str | None, column: str, where: str) -> float:
    text = (raw or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise DataError(
            f"{where}: {column} must be a number of seconds, got {text or 'nothing'!r}"
        ) from None
    if not math.isfinite(value):
        raise DataError(f"{where}: {column} must be a finite number of seconds, got {text!r}")
    return value
