"""The index's two tables of paths: every path seen with the video id of its bytes
(`sources`), and the identity memo (`memo`) that lets an unchanged input go unread.

A path is kept as `paths.stored` has it: TEXT, or the raw bytes of a name that is not UTF-8 as
a BLOB, so any name the filesystem holds is kept and found again exactly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator

from harmcache.paths import restored, stored
from harmcache.store.keys import CHUNK, SCAN_MIN, SCAN_SHARE, id_of, key_of, sort_key

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
        """Distinct video ids among the recorded paths (a scan of `sources_by_video`: no sort)."""
        return self.db.execute("SELECT COUNT(DISTINCT video_id) FROM sources").fetchone()[0]

    def sources_of(self, paths: list[str]) -> dict[str, str]:
        """path → video id, for those of `paths` already seen."""
        rows = self._lookup("sources", "path, video_id", paths)
        return {p: id_of(v) for p, v in rows}

    def first_paths(self, video_ids: Iterable[str]) -> dict[str, str]:
        """video id → its smallest recorded path (in Python's order of the paths), for those of
        `video_ids` with one: lookups through `sources_by_video`, never a pass over every path."""
        keys = sorted({key_of(v) for v in video_ids}, key=sort_key)
        out: dict[str, str] = {}
        for start in range(0, len(keys), CHUNK):
            part = keys[start : start + CHUNK]
            marks = ",".join("?" * len(part))
            rows = self.db.execute(
                f"SELECT video_id, path FROM sources WHERE video_id IN ({marks})", part
            )
            for key, path in rows:
                vid, path = id_of(key), restored(path)
                if vid not in out or path < out[vid]:
                    out[vid] = path
        return out

    # --- the identity memo ---------------------------------------------------------------
    def memo_of(self, paths: list[str]) -> dict[str, tuple[FileStamp, str]]:
        """Absolute path → (its stamp when last hashed, the video id it hashed to), for those
        of `paths` hashed before."""
        rows = self._lookup("memo", "path, size, mtime_ns, inode, video_id", paths)
        return {p: ((s, m, i), id_of(v)) for p, s, m, i, v in rows}

    def _lookup(self, table: str, columns: str, paths: list[str]) -> list[tuple]:
        """Rows (path first) of `table` whose path is in `paths`, asked in chunks in key order:
        memory stays bounded by the question, never by the table (a million paths). A question
        about a good share of the table is one scan of it instead."""
        select = f"SELECT {columns} FROM {table}"
        wanted = {stored(p) for p in paths}
        if len(wanted) >= SCAN_MIN:
            size = self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            if len(wanted) * SCAN_SHARE > size:
                found = self.db.execute(select)
                return [(restored(path), *rest) for path, *rest in found if path in wanted]
        keys = sorted(wanted, key=sort_key)
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
