"""The SQLite index: which shard holds which video in each family, which paths were seen, and a
memo of file identities so that an unchanged input is never hashed twice.

It is only a cache. Every fact in it comes from the shards' own attributes and the cache's
JSON-lines logs (the memo is pure speed-up), and a rebuild recreates it from them. An index of an
older schema is rebuilt rather than migrated, for the same reason.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from harmcache.hashing import canonical_json
from harmcache.paths import restored, stored
from harmcache.store.family import Family

SCHEMA_VERSION = "2"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS families (
    name TEXT PRIMARY KEY, extractor TEXT, fingerprint TEXT, spec TEXT, random_init INTEGER);
CREATE TABLE IF NOT EXISTS shards (
    family TEXT, file TEXT, n_videos INTEGER, versions TEXT, PRIMARY KEY (family, file));
CREATE TABLE IF NOT EXISTS entries (
    family TEXT, video_id TEXT, shard TEXT, backend TEXT, PRIMARY KEY (family, video_id));
CREATE TABLE IF NOT EXISTS sources (path TEXT PRIMARY KEY, video_id TEXT);
CREATE TABLE IF NOT EXISTS memo (
    path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, inode INTEGER, video_id TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""
_TABLES = ("families", "shards", "entries", "sources", "memo", "meta")

FileStamp = tuple[int, int, int]
"""(size, mtime_ns, inode): a file whose stamp is unchanged is taken to hold the same bytes."""


class Index:
    """The index at `path`. With `readonly=True` it is copied into memory and never written
    back, so a cache on a read-only mount can still be refreshed and read."""

    def __init__(self, path: Path, *, readonly: bool = False):
        self.path = path
        self.readonly = readonly
        self.db = self._open_memory_copy(path) if readonly else self._open(path)
        if self.get_meta("schema_version") != SCHEMA_VERSION:
            for table in _TABLES:
                self.db.execute(f"DROP TABLE IF EXISTS {table}")
            self.db.executescript(_SCHEMA)
            self.set_meta("schema_version", SCHEMA_VERSION)

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=60)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError:  # not a database (damaged): it is only a cache, rebuild it
            db.close()
            path.unlink()
            db = sqlite3.connect(path, timeout=60)
        # Planning looks up every input: keep the index's pages in memory instead of asking the
        # OS for the same B-tree pages chunk after chunk (64 MiB at most).
        db.execute("PRAGMA cache_size = -65536")
        return db

    @staticmethod
    def _open_memory_copy(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(":memory:")
        if path.exists():
            try:
                disk = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
                disk.backup(db)
                disk.close()
            except sqlite3.DatabaseError:
                db = sqlite3.connect(":memory:")  # damaged: rebuilt from the shards in memory
        return db

    def close(self) -> None:
        self.db.close()

    def clear(self) -> None:
        with self.db:
            for table in _TABLES:
                if table != "meta":
                    self.db.execute(f"DELETE FROM {table}")
            self.db.execute("DELETE FROM meta WHERE key != 'schema_version'")

    # --- families and shards -------------------------------------------------------------
    def add_family(self, family: Family) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR IGNORE INTO families VALUES (?, ?, ?, ?, ?)",
                (
                    family.name,
                    family.extractor,
                    family.fingerprint,
                    canonical_json(family.spec),
                    int(family.random_init),
                ),
            )

    def families(self) -> list[Family]:
        rows = self.db.execute("SELECT extractor, fingerprint, spec FROM families ORDER BY name")
        return [Family(e, f, json.loads(s)) for e, f, s in rows]

    def drop_family(self, name: str) -> None:
        with self.db:
            for table, column in (
                ("families", "name"),
                ("shards", "family"),
                ("entries", "family"),
            ):
                self.db.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))

    def add_shard(
        self,
        family: Family,
        file: str,
        video_ids: list[str],
        *,
        backends: list[str] | None = None,
        versions: dict | None = None,
    ) -> None:
        """Record a committed shard. A video already held by another shard keeps its first home
        (by shard name), so the index is the same whatever order shards are found in."""
        backends = backends or [""] * len(video_ids)
        with self.db:
            self.add_family(family)
            self.db.execute(
                "INSERT OR REPLACE INTO shards VALUES (?, ?, ?, ?)",
                (family.name, file, len(video_ids), canonical_json(versions or {})),
            )
            for vid, backend in zip(video_ids, backends, strict=True):
                row = self.db.execute(
                    "SELECT shard FROM entries WHERE family = ? AND video_id = ?",
                    (family.name, vid),
                ).fetchone()
                if row is None or file < row[0]:
                    self.db.execute(
                        "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?)",
                        (family.name, vid, file, backend),
                    )

    def replace_shards(
        self,
        family: Family,
        old: list[str],
        file: str,
        video_ids: list[str],
        *,
        backends: list[str],
        versions: dict,
    ) -> None:
        """In one transaction: record the shard `file` (which holds every video of the `old`
        shards), point those videos' entries at it, and forget the `old` shards."""
        gone = [f for f in old if f != file]
        with self.db:
            self.add_family(family)
            self.db.execute(
                "INSERT OR REPLACE INTO shards VALUES (?, ?, ?, ?)",
                (family.name, file, len(video_ids), canonical_json(versions)),
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?)",
                [(family.name, v, file, b) for v, b in zip(video_ids, backends, strict=True)],
            )
            for f in gone:
                where = (family.name, f)
                self.db.execute("DELETE FROM shards WHERE family = ? AND file = ?", where)
                self.db.execute("DELETE FROM entries WHERE family = ? AND shard = ?", where)

    def drop_shard(self, family: str, file: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM shards WHERE family = ? AND file = ?", (family, file))
            self.db.execute("DELETE FROM entries WHERE family = ? AND shard = ?", (family, file))

    def shard_sizes(self, family: str) -> list[int]:
        """Videos per shard of the family."""
        rows = self.db.execute("SELECT n_videos FROM shards WHERE family = ?", (family,))
        return [n for (n,) in rows]

    def shards(self, family: str) -> list[tuple[str, int, str]]:
        """(file, videos, library versions as canonical JSON) of each shard, in name order."""
        rows = self.db.execute(
            "SELECT file, n_videos, versions FROM shards WHERE family = ? ORDER BY file",
            (family,),
        )
        return rows.fetchall()

    def shard_files(self, family: str) -> set[str]:
        rows = self.db.execute("SELECT file FROM shards WHERE family = ?", (family,))
        return {r[0] for r in rows}

    def entries(self, family: str) -> dict[str, str]:
        """video_id → shard file."""
        rows = self.db.execute("SELECT video_id, shard FROM entries WHERE family = ?", (family,))
        return dict(rows.fetchall())

    def shards_of(self, family: str, video_ids: list[str], chunk: int = 500) -> dict[str, str]:
        """video_id → shard file, for those of `video_ids` the family holds: a primary-key
        lookup per id, so finding a few videos costs nothing however large the family."""
        out: dict[str, str] = {}
        ids = list(dict.fromkeys(video_ids))
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            marks = ",".join("?" * len(part))
            rows = self.db.execute(
                f"SELECT video_id, shard FROM entries WHERE family = ? AND video_id IN ({marks})",
                [family, *part],
            )
            out.update(rows.fetchall())
        return out

    def backends(self, family: str) -> dict[str, int]:
        """Decode backend → number of the family's videos it decoded."""
        rows = self.db.execute(
            "SELECT backend, COUNT(*) FROM entries WHERE family = ? GROUP BY backend", (family,)
        )
        return {b or "unknown": n for b, n in rows.fetchall()}

    def versions(self, family: str) -> dict[str, int]:
        """Library versions (canonical JSON) → number of the family's videos made under them."""
        rows = self.db.execute(
            "SELECT versions, SUM(n_videos) FROM shards WHERE family = ? GROUP BY versions",
            (family,),
        )
        return dict(rows.fetchall())

    # --- sources (paths seen for each video id) ------------------------------------------
    # A path is kept as `paths.stored` has it: TEXT, or the raw bytes of a name that is not
    # UTF-8 as a BLOB, so any name the filesystem holds is kept and found again exactly.
    def set_sources(self, pairs: list[tuple[str, str]]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO sources VALUES (?, ?)", [(stored(p), v) for p, v in pairs]
            )

    def sources(self) -> dict[str, str]:
        rows = self.db.execute("SELECT path, video_id FROM sources")
        return {restored(p): v for p, v in rows}

    def sources_of(self, paths: list[str]) -> dict[str, str]:
        """path → video id, for those of `paths` already seen."""
        return {p: v for p, v in self._lookup("SELECT path, video_id FROM sources", paths)}

    # --- the identity memo ---------------------------------------------------------------
    def memo_of(self, paths: list[str]) -> dict[str, tuple[FileStamp, str]]:
        """Absolute path → (its stamp when last hashed, the video id it hashed to), for those
        of `paths` hashed before."""
        rows = self._lookup("SELECT path, size, mtime_ns, inode, video_id FROM memo", paths)
        return {p: ((s, m, i), v) for p, s, m, i, v in rows}

    def _lookup(self, select: str, paths: list[str], chunk: int = 500) -> list[tuple]:
        """Rows (path first) whose path is in `paths`, asked in chunks: memory stays bounded by
        the question, never by the table (a million paths)."""
        rows: list[tuple] = []
        for start in range(0, len(paths), chunk):
            part = [stored(p) for p in paths[start : start + chunk]]
            marks = ",".join("?" * len(part))
            found = self.db.execute(f"{select} WHERE path IN ({marks})", part).fetchall()
            rows += [(restored(path), *rest) for path, *rest in found]
        return rows

    def set_memo(self, rows: list[tuple[str, FileStamp, str]]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO memo VALUES (?, ?, ?, ?, ?)",
                [(stored(p), *stamp, vid) for p, stamp, vid in rows],
            )

    def get_meta(self, key: str) -> str | None:
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:  # a new or older index without a meta table
            return None
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
