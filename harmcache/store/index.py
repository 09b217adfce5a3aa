"""The SQLite index: which shard holds which video in each family, and which paths were seen.

It is only a cache. Every fact in it comes from the shards' own attributes and the cache's
JSON-lines logs, and `rebuild()` recreates it from them.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from harmcache.hashing import canonical_json
from harmcache.store.family import Family

_SCHEMA = """
CREATE TABLE IF NOT EXISTS families (
    name TEXT PRIMARY KEY, extractor TEXT, fingerprint TEXT, spec TEXT, random_init INTEGER);
CREATE TABLE IF NOT EXISTS shards (
    family TEXT, file TEXT, n_videos INTEGER, PRIMARY KEY (family, file));
CREATE TABLE IF NOT EXISTS entries (
    family TEXT, video_id TEXT, shard TEXT, PRIMARY KEY (family, video_id));
CREATE TABLE IF NOT EXISTS sources (path TEXT PRIMARY KEY, video_id TEXT);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


class Index:
    def __init__(self, path: Path):
        self.path = path
        self.db = sqlite3.connect(path, timeout=60)
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def clear(self) -> None:
        with self.db:
            for table in ("families", "shards", "entries", "sources", "meta"):
                self.db.execute(f"DELETE FROM {table}")

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

    def add_shard(self, family: Family, file: str, video_ids: list[str]) -> None:
        """Record a committed shard. A video already held by another shard keeps its first home
        (by shard name), so the index is the same whatever order shards are found in."""
        with self.db:
            self.add_family(family)
            self.db.execute(
                "INSERT OR REPLACE INTO shards VALUES (?, ?, ?)",
                (family.name, file, len(video_ids)),
            )
            for vid in video_ids:
                row = self.db.execute(
                    "SELECT shard FROM entries WHERE family = ? AND video_id = ?",
                    (family.name, vid),
                ).fetchone()
                if row is None or file < row[0]:
                    self.db.execute(
                        "INSERT OR REPLACE INTO entries VALUES (?, ?, ?)", (family.name, vid, file)
                    )

    def drop_shard(self, family: str, file: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM shards WHERE family = ? AND file = ?", (family, file))
            self.db.execute("DELETE FROM entries WHERE family = ? AND shard = ?", (family, file))

    def shard_files(self, family: str) -> set[str]:
        rows = self.db.execute("SELECT file FROM shards WHERE family = ?", (family,))
        return {r[0] for r in rows}

    def entries(self, family: str) -> dict[str, str]:
        """video_id → shard file."""
        rows = self.db.execute("SELECT video_id, shard FROM entries WHERE family = ?", (family,))
        return dict(rows.fetchall())

    # --- sources (paths seen for each video id) ------------------------------------------
    def set_sources(self, pairs: list[tuple[str, str]]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO sources VALUES (?, ?)", pairs)

    def sources(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT path, video_id FROM sources").fetchall())

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
