"""Append-only JSON-lines logs in the cache: the failure ledger and the path→video-id sightings.

Each append is fsynced; a crash can tear only the last line, which readers skip. Lines are
`paths.json_line`s, so a path whose name is not UTF-8 reads back exactly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harmcache.paths import json_line
from harmcache.store.atomic import append_line_durable


class JsonLog:
    def __init__(self, path: Path):
        self.path = path

    def append(self, **fields: Any) -> None:
        fields.setdefault("time", round(time.time(), 3))
        append_line_durable(self.path, json_line(fields))

    def extend(self, rows: list[dict[str, Any]]) -> None:
        """Append many rows with one write and one fsync."""
        now = round(time.time(), 3)
        lines = [json_line({"time": now, **r}) for r in rows]
        if lines:
            append_line_durable(self.path, "\n".join(lines))

    def read(self) -> list[dict[str, Any]]:
        return list(self.rows_from(0, self.size()))

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def whole_lines_end(self, end: int) -> int:
        """Where the last whole line before byte `end` ends: where the next read starts."""
        if not self.path.exists() or end == 0:
            return 0
        with open(self.path, "rb") as f:
            f.seek(max(0, end - 65536))
            tail = f.read(end - max(0, end - 65536))
        cut = tail.rfind(b"\n")
        return end - len(tail) + cut + 1 if cut >= 0 else max(0, end - len(tail))

    def rows_from(self, start: int, end: int) -> Iterator[dict[str, Any]]:
        """The rows between byte `start` (a line boundary a previous read ended at) and `end`,
        streamed: a reader that keeps up reads each line once, and a million lines never sit in
        memory at once."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            f.seek(start)
            for line in f:
                start += len(line)
                if start > end or not line.endswith(b"\n"):
                    return  # being appended (or torn): read again once it is whole
                try:
                    yield json.loads(line.decode("utf-8", errors="replace"))
                except json.JSONDecodeError:
                    continue  # a line torn by a crash
