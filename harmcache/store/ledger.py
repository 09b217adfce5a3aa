"""Append-only JSON-lines logs in the cache: the failure ledger and the path→video-id sightings.

Each append is fsynced; a crash can tear only the last line, which readers skip. Lines are
`paths.json_line`s, so a path whose name is not UTF-8 reads back exactly.
"""

from __future__ import annotations

import json
import time
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
        return self.read_from(0)[0]

    def read_from(self, offset: int) -> tuple[list[dict[str, Any]], int]:
        """The rows from byte `offset` on (a line boundary a previous read ended at), and the
        offset this read ended at: a reader that keeps up reads each line once."""
        if not self.path.exists():
            return [], 0
        with open(self.path, "rb") as f:
            f.seek(offset)
            data = f.read()
        rows = []
        for line in data.decode("utf-8", errors="replace").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line torn by a crash
        return rows, offset + len(data)
