"""The SQLite index: which shard holds which video in each family, which paths were seen, and a
memo of file identities so that an unchanged input is never hashed twice.

It is only a cache. Every fact in it comes from the shards' own attributes and the cache's
JSON-lines logs (the memo is pure speed-up), and a rebuild recreates it from them. An index of an
older schema is rebuilt rather than migrated, for the same reason.

It is laid out for a million videos and more (see docs/scale-out.md#the-index): families and
shards are small integers, a video id is its 32 raw bytes, and the per-video tables are keyed the
way they are read (WITHOUT ROWID, so the key is the table, not a second B-tree beside it). Every
statement that touches many videos is one set-based statement or one pass in key order; none
scans a family per shard.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from harmcache.hashing import canonical_json
from harmcache.store.family import Family
from harmcache.store.keys import CHUNK, SCAN_MIN, SCAN_SHARE, id_of, key_of, sort_key
from harmcache.store.path_tables import FileStamp, PathTables

SCHEMA_VERSION = "4"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS families (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE, extractor TEXT, fingerprint TEXT, spec TEXT,
    random_init INTEGER);
CREATE TABLE IF NOT EXISTS shards (
    id INTEGER PRIMARY KEY, family INTEGER, file TEXT, n_videos INTEGER, versions TEXT,
    rowless INTEGER, UNIQUE (family, file));
CREATE TABLE IF NOT EXISTS entries (
    family INTEGER, video_id BLOB, shard INTEGER, backend TEXT,
    PRIMARY KEY (family, video_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_shard ON entries (shard);
CREATE TABLE IF NOT EXISTS sources (path PRIMARY KEY, video_id BLOB) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sources_by_video ON sources (video_id);
CREATE TABLE IF NOT EXISTS memo (
    path PRIMARY KEY, size INTEGER, mtime_ns INTEGER, inode INTEGER, video_id BLOB)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""
_TABLES = ("families", "shards", "entries", "sources", "memo", "meta")

MMAP_BYTES = 1 << 34
"""Read the index through a memory map (SQLite caps it at its compile-time limit): lookups
then cost a memory read, not a read() call and a copy into SQLite's own page cache, and the
pages are the kernel's to share and reclaim."""
PAGE_CACHE_KIB = 65536
"""SQLite's own page cache, for the pages a transaction writes (64 MiB)."""


class Index(PathTables):
    """The index at `path`. With `readonly=True` it is copied into memory and never written
    back, so a cache on a read-only mount can still be refreshed and read."""

    def __init__(self, path: Path, *, readonly: bool = False):
        self.path = path
        self.readonly = readonly
        self.db = self._open_memory_copy(path) if readonly else self._open(path)
        self._family_ids: dict[str, int] = {}
        if self.get_meta("schema_version") != SCHEMA_VERSION:
            rows = self.db.execute("SELECT type, name FROM sqlite_master WHERE type = 'table'")
            for _, table in rows.fetchall():
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
        db.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
        db.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
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
        self._family_ids.clear()

    # --- families --------------------------------------------------------------------------
    def add_family(self, family: Family) -> int:
        with self.db:
            return self._put_family(family)

    def _put_family(self, family: Family) -> int:
        known = self._family_ids.get(family.name)
        if known is not None:
            return known
        self.db.execute(
            "INSERT OR IGNORE INTO families (name, extractor, fingerprint, spec, random_init) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                family.name,
                family.extractor,
                family.fingerprint,
                canonical_json(family.spec),
                int(family.random_init),
            ),
        )
        return self._family_id(family.name)

    def _family_id(self, name: str) -> int | None:
        if name not in self._family_ids:
            row = self.db.execute("SELECT id FROM families WHERE name = ?", (name,)).fetchone()
            if row is None:
                return None
            self._family_ids[name] = row[0]
        return self._family_ids[name]

    def families(self) -> list[Family]:
        rows = self.db.execute("SELECT extractor, fingerprint, spec FROM families ORDER BY name")
        return [Family(e, f, json.loads(s)) for e, f, s in rows]

    def drop_family(self, name: str) -> None:
        fam = self._family_id(name)
        if fam is None:
            return
        with self.db:
            self.db.execute("DELETE FROM entries WHERE family = ?", (fam,))
            self.db.execute("DELETE FROM shards WHERE family = ?", (fam,))
            self.db.execute("DELETE FROM families WHERE id = ?", (fam,))
        del self._family_ids[name]

    # --- shards ----------------------------------------------------------------------------
    def add_shard(
        self,
        family: Family,
        file: str,
        video_ids: list[str],
        *,
        backends: list[str] | None = None,
        versions: dict | None = None,
        rowless: int | None = None,
    ) -> None:
        """Record a committed shard. A video already held by another shard keeps its first home
        (by shard name), so the index is the same whatever order shards are found in.
        `rowless`: how many of its videos have no rows (None: not known)."""
        self.add_shards([(family, file, video_ids, backends, versions, rowless)])

    def add_shards(self, shards: list[tuple]) -> None:
        """`add_shard` for many (family, file, video_ids, backends, versions, rowless), in one
        transaction: a rebuild over a hundred thousand shards syncs once, not per shard."""
        with self.db:
            for family, file, video_ids, backends, versions, rowless in shards:
                fam = self._put_family(family)
                shard = self._put_shard(fam, file, len(video_ids), versions or {}, rowless)
                backends = backends or [""] * len(video_ids)
                # One upsert per video; the name comparison runs only on a conflict (a video
                # held twice, which only an interrupted compaction leaves behind).
                self.db.executemany(
                    "INSERT INTO entries VALUES (?, ?, ?, ?) ON CONFLICT (family, video_id) DO "
                    "UPDATE SET shard = excluded.shard, backend = excluded.backend "
                    "WHERE (SELECT file FROM shards WHERE id = excluded.shard)"
                    " < coalesce((SELECT file FROM shards WHERE id = entries.shard), '~')",
                    [(fam, key_of(v), shard, b) for v, b in zip(video_ids, backends, strict=True)],
                )

    def _put_shard(
        self, fam: int, file: str, n_videos: int, versions: dict, rowless: int | None
    ) -> int:
        row = self.db.execute(
            "INSERT INTO shards (family, file, n_videos, versions, rowless) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (family, file) DO UPDATE SET n_videos = excluded.n_videos, "
            "versions = excluded.versions, rowless = excluded.rowless RETURNING id",
            (fam, file, n_videos, canonical_json(versions), rowless),
        )
        return row.fetchone()[0]

    def replace_shards(
        self,
        family: Family,
        old: list[str],
        file: str,
        video_ids: list[str],
        *,
        backends: list[str],
        versions: dict,
        rowless: int | None = None,
    ) -> None:
        """In one transaction: record the shard `file` (which holds every video of the `old`
        shards), point those videos' entries at it, and forget the `old` shards. Costs what
        the videos moved cost, whatever the family's size."""
        with self.db:
            fam = self._put_family(family)
            gone = self._shard_ids(fam, [f for f in old if f != file])
            shard = self._put_shard(fam, file, len(video_ids), versions, rowless)
            self.db.executemany(
                "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?)",
                [(fam, key_of(v), shard, b) for v, b in zip(video_ids, backends, strict=True)],
            )
            self._forget_shards(gone)

    def drop_shard(self, family: str, file: str) -> None:
        fam = self._family_id(family)
        if fam is not None:
            with self.db:
                self._forget_shards(self._shard_ids(fam, [file]))

    def _shard_ids(self, fam: int, files: list[str]) -> list[int]:
        out: list[int] = []
        for start in range(0, len(files), CHUNK):
            part = files[start : start + CHUNK]
            marks = ",".join("?" * len(part))
            rows = self.db.execute(
                f"SELECT id FROM shards WHERE family = ? AND file IN ({marks})", [fam, *part]
            )
            out += [r[0] for r in rows]
        return out

    def _forget_shards(self, ids: list[int]) -> None:
        """Delete shards and the entries still pointing at them (through `entries_by_shard`)."""
        self.db.executemany("DELETE FROM entries WHERE shard = ?", [(i,) for i in ids])
        self.db.executemany("DELETE FROM shards WHERE id = ?", [(i,) for i in ids])

    def shard_sizes(self, family: str) -> list[int]:
        """Videos per shard of the family."""
        return [n for _, n, _ in self.shards(family)]

    def shards(self, family: str) -> list[tuple[str, int, str]]:
        """(file, videos, library versions as canonical JSON) of each shard, in name order."""
        rows = self.db.execute(
            "SELECT s.file, s.n_videos, s.versions FROM shards s JOIN families f "
            "ON f.id = s.family WHERE f.name = ? ORDER BY s.file",
            (family,),
        )
        return rows.fetchall()

    def shard_files(self, family: str) -> set[str]:
        return {file for file, _, _ in self.shards(family)}

    def _shard_names(self, fam: int) -> dict[int, str]:
        rows = self.db.execute("SELECT id, file FROM shards WHERE family = ?", (fam,))
        return dict(rows.fetchall())

    # --- entries (which shard holds each video) --------------------------------------------
    def count(self, family: str) -> int:
        """Videos the family holds."""
        fam = self._family_id(family)
        if fam is None:
            return 0
        row = self.db.execute("SELECT COUNT(*) FROM entries WHERE family = ?", (fam,))
        return row.fetchone()[0]

    def distinct_videos(self) -> int:
        """Video ids held by any family."""
        if len(self._all_family_ids()) <= 1:  # one family: its count, no distinct pass
            return sum(self.count(name) for name in self._all_family_names())
        row = self.db.execute("SELECT COUNT(DISTINCT video_id) FROM entries")
        return row.fetchone()[0]

    def _all_family_names(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM families")]

    def _all_family_ids(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT id FROM families")]

    def entries(self, family: str) -> dict[str, str]:
        """video_id → shard file, every video of the family, in one pass in key order."""
        return dict(self._scan(family))

    def iter_entries(self, family: str) -> Iterator[tuple[str, str]]:
        """(video_id, shard file) of every video of the family, shard by shard in name order,
        streamed: memory stays bounded by one shard."""
        fam = self._family_id(family)
        if fam is None:
            return
        names = sorted(self._shard_names(fam).items(), key=lambda item: item[1])
        for shard, file in names:
            rows = self.db.execute("SELECT video_id FROM entries WHERE shard = ?", (shard,))
            for (key,) in rows:
                yield id_of(key), file

    def _scan(self, family: str) -> Iterator[tuple[str, str]]:
        fam = self._family_id(family)
        if fam is None:
            return
        names = self._shard_names(fam)
        rows = self.db.execute("SELECT video_id, shard FROM entries WHERE family = ?", (fam,))
        for key, shard in rows:
            yield id_of(key), names[shard]

    def shards_of(self, family: str, video_ids: Iterable[str]) -> dict[str, str]:
        """video_id → shard file, for those of `video_ids` the family holds. A few ids are
        primary-key lookups (asked in key order, so each page is read once), costing nothing
        however large the family (`verify` asks once per shard); a good share of the family is
        one scan of its entries, which is cheaper than as many lookups."""
        fam = self._family_id(family)
        if fam is None:
            return {}
        keys = {key_of(v) for v in video_ids}
        if len(keys) >= SCAN_MIN and len(keys) * SCAN_SHARE > self._held(fam):
            names = self._shard_names(fam)
            rows = self.db.execute("SELECT video_id, shard FROM entries WHERE family = ?", (fam,))
            return {id_of(k): names[s] for k, s in rows if k in keys}
        out: dict[str, str] = {}
        ordered = sorted(keys, key=sort_key)
        for start in range(0, len(ordered), CHUNK):
            part = ordered[start : start + CHUNK]
            marks = ",".join("?" * len(part))
            rows = self.db.execute(
                "SELECT e.video_id, s.file FROM entries e JOIN shards s ON s.id = e.shard "
                f"WHERE e.family = ? AND e.video_id IN ({marks})",
                [fam, *part],
            )
            out.update((id_of(k), file) for k, file in rows)
        return out

    def shards_with_rowless(self, family: str) -> set[str]:
        """The family's shards that may hold videos with no rows: those that have some, and
        those whose shard did not say (older shards). One pass over the family's shards."""
        fam = self._family_id(family)
        rows = self.db.execute(
            "SELECT file FROM shards WHERE family = ? AND (rowless IS NULL OR rowless > 0)", (fam,)
        )
        return {file for (file,) in rows}

    def _held(self, fam: int) -> int:
        """The family's videos as its shards count them (a video held twice counts twice): a
        sum over the shards table, far cheaper than counting the entries."""
        row = self.db.execute("SELECT SUM(n_videos) FROM shards WHERE family = ?", (fam,))
        return row.fetchone()[0] or 0

    def backends(self, family: str) -> dict[str, int]:
        """Decode backend → number of the family's videos it decoded."""
        fam = self._family_id(family)
        rows = self.db.execute(
            "SELECT backend, COUNT(*) FROM entries WHERE family = ? GROUP BY backend", (fam,)
        )
        return {b or "unknown": n for b, n in rows.fetchall()}

    def versions(self, family: str) -> dict[str, int]:
        """Library versions (canonical JSON) → number of the family's videos made under them."""
        rows = self.db.execute(
            "SELECT s.versions, SUM(s.n_videos) FROM shards s JOIN families f "
            "ON f.id = s.family WHERE f.name = ? GROUP BY s.versions",
            (family,),
        )
        return dict(rows.fetchall())

    def get_meta(self, key: str) -> str | None:
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:  # a new or older index without a meta table
            return None
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def size_bytes(self) -> int:
        """The index's size on disk (pages in use)."""
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        return pages * self.db.execute("PRAGMA page_size").fetchone()[0]


__all__ = ["FileStamp", "Index"]
