"""The index's two tables of paths: every path seen with the video id of its bytes
(`sources`), and the identity memo (`memo`) that lets an unchanged input go unread.

A path is kept as `paths.stored` has it: TEXT, or the raw bytes of a name that is not UTF-8 as
a BLOB, so any name the filesystem holds is kept and found again exactly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator

from harmcache.paths import restored, stored
from harmcache.store.keys import CHUNK, id_of, key_of, sort_key

FileStamp = tuple[int, int, int]
"""(size, mtime_ns, inode): a file whose stamp is unchanged is taken to hold the same bytes."""


class PathTables:
    """The path tables of `Index` (which holds the connection, `db`)."""

    db: sqlite3.Connection

    def set_sources(self, pairs: Iterable[tuple[str, str]]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO sources VALUES (?, ?)",
                ((stored(p), key_of(v)) for p, v in pairs),
            )

    def sources(self) -> dict[str, str]:
        return dict(self.iter_sources())

    def iter_sources(self) -> Iterator[tuple[str, str]]:
        """(path, video id) of every recorded path, streamed in path order."""
        for path, key in self.db.execute("SELECT path, video_id FROM sources"):
            yield restored(path), id_of(key)

    def count_source_videos(self) -> int:
        """Distinct video ids among the recorded paths."""
        return self.db.execute("SELECT COUNT(DISTINCT video_id) FROM sources").fetchone()[0]

    def sources_of(self, paths: list[str]) -> dict[str, str]:
        """path → video id, for those of `paths` already seen."""
        rows = self._lookup("SELECT path, video_id FROM sources", paths)
        return {p: id_of(v) for p, v in rows}

    def first_paths(self, video_ids: Iterable[str]) -> dict[str, str]:
        """video id → its smallest recorded path, for those of `video_ids` with one: one pass
        over the recorded paths (in path order, so the first seen is the smallest)."""
        wanted = {key_of(v) for v in video_ids}
        out: dict[str, str] = {}
        if wanted:
            for path, key in self.db.execute("SELECT path, video_id FROM sources"):
                if key in wanted and id_of(key) not in out:
                    out[id_of(key)] = restored(path)
        return out

    # --- the identity memo ---------------------------------------------------------------
    def memo_of(self, paths: list[str]) -> dict[str, tuple[FileStamp, str]]:
        """Absolute path → (its stamp when last hashed, the video id it hashed to), for those
        of `paths` hashed before."""
        rows = self._lookup("SELECT path, size, mtime_ns, inode, video_id FROM memo", paths)
        return {p: ((s, m, i), id_of(v)) for p, s, m, i, v in rows}

    def _lookup(self, select: str, paths: list[str]) -> list[tuple]:
        """Rows (path first) whose path is in `paths`, asked in chunks in key order: memory
        stays bounded by the question, never by the table (a million paths)."""
        keys = sorted({stored(p) for p in paths}, key=sort_key)
        rows: list[tuple] = []
        for start in range(0, len(keys), CHUNK):
            part = keys[start : start + CHUNK]
            marks = ",".join("?" * len(part))
            found = self.db.execute(f"{select} WHERE path IN ({marks})", part).fetchall()
            rows += [(restored(path), *rest) for path, *rest in found]
        return rows

    def set_memo(self, rows: Iterable[tuple[str, FileStamp, str]]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO memo VALUES (?, ?, ?, ?, ?)",
                ((stored(p), *stamp, key_of(vid)) for p, stamp, vid in rows),
            )
