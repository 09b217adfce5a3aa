"""The feature cache: shard families, the index, the failure ledger and the path sightings.

DIR/harmcache.json              marker and format version
DIR/features/<family>/family.json  the family's extractor, fingerprint and full spec
DIR/features/<family>/shard-*.h5   committed shards (see shard.py)
DIR/failures.jsonl              failure ledger: path, video_id, reason, message, time
DIR/sources.jsonl               every path seen and the video id of its bytes
DIR/index.sqlite                rebuildable index (and the memo of file identities)
DIR/writer.lock                 flock: shared by writers for their run, exclusive for `gc`

A cache on a read-only mount (or without write permission) opens read-only: its index is
refreshed in memory and every read works; anything that must write raises a `CacheError`.

Reads go through a `ReadPlan` (plan.py: `cache.plan(family, video_ids)`); keeping the cache in
order (verify, gc, reindex, migrate, compact) is maintenance.py's.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from pathlib import Path

from harmcache.errors import CacheError
from harmcache.paths import shown
from harmcache.store.atomic import leftovers, write_text_atomic
from harmcache.store.family import Family
from harmcache.store.index import FileStamp, Index
from harmcache.store.ledger import JsonLog
from harmcache.store.lock import CacheLock
from harmcache.store.plan import ReadPlan
from harmcache.store.shard import read_header, write_shard
from harmcache.types import VideoFeatures

log = logging.getLogger(__name__)

MARKER = "harmcache.json"
CACHE_FORMAT_VERSION = 1


class FeatureCache:
    """Open (or with `create=True`, make) a cache folder."""

    def __init__(self, root: str | Path, *, create: bool = False):
        self.root = Path(root)
        marker = self.root / MARKER
        if not marker.exists():
            if not create:
                raise CacheError(f"{self.root} is not a harmcache cache (no {MARKER})")
            try:
                (self.root / "features").mkdir(parents=True, exist_ok=True)
                write_text_atomic(
                    marker,
                    json.dumps({"format": "harmcache-cache", "version": CACHE_FORMAT_VERSION}),
                )
            except OSError as exc:
                raise CacheError(f"cannot create a cache in {self.root}: {exc.strerror}") from None
        self.writable = _writable(self.root)
        self.failures = JsonLog(self.root / "failures.jsonl")
        self.sightings = JsonLog(self.root / "sources.jsonl")
        self.index = Index(self.root / "index.sqlite", readonly=not self.writable)
        self.refresh()

    @property
    def readonly(self) -> bool:
        return not self.writable

    def require_writable(self, what: str) -> None:
        """A `CacheError` saying the cache cannot `what`, unless it is writable."""
        if not self.writable:
            raise CacheError(f"the cache {self.root} is read-only: cannot {what}")

    def lock(self) -> CacheLock:
        """The cache's writer lock (see store/lock.py); `extract` holds `.shared()` for its run."""
        self.require_writable("take the writer lock")
        return CacheLock(self.root)

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> FeatureCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- layout ----------------------------------------------------------------------------
    def family_dir(self, family: Family | str) -> Path:
        name = family if isinstance(family, str) else family.name
        return self.root / "features" / name

    def ensure_family(self, family: Family) -> Path:
        self.require_writable(f"add the family {family.name}")
        folder = self.family_dir(family)
        folder.mkdir(parents=True, exist_ok=True)
        meta = folder / "family.json"
        if not meta.exists():
            write_text_atomic(meta, family.to_json())
        self.index.add_family(family)
        return folder

    # --- keeping the index true to the shards ---------------------------------------------
    def refresh(self) -> None:
        """Index shards committed since the index was last written (by a crashed run or by
        another writer), forget shards that are gone, and pick up new path sightings."""
        features = self.root / "features"
        for folder in (
            sorted(p for p in features.iterdir() if p.is_dir()) if features.exists() else []
        ):
            on_disk = {p.name for p in folder.glob("shard-*.h5")}
            known = self.index.shard_files(folder.name)
            self._index_found(folder, sorted(on_disk - known))
            for file in known - on_disk:
                self.index.drop_shard(folder.name, file)
            meta = folder / "family.json"
            if meta.exists() and folder.name not in {f.name for f in self.index.families()}:
                try:
                    family = Family.read(meta)
                except CacheError as exc:
                    log.warning("skipping %s", exc)
                    continue
                self.index.add_family(family)
        self._read_new_sightings()

    def _index_found(self, folder: Path, files: list[str], batch: int = 50_000) -> None:
        """Index shards found on disk, about `batch` videos per transaction: a rebuild over a
        hundred thousand shards must not sync once per shard, and each transaction then
        rewrites each page of the index it touches once for many videos."""
        found: list[tuple] = []
        videos = 0
        for n, file in enumerate(files, start=1):
            try:
                header = read_header(folder / file)
            except (OSError, ValueError, KeyError) as exc:
                log.warning("skipping unreadable shard %s/%s: %s", folder.name, file, exc)
            else:
                found.append(
                    (
                        header.family,
                        file,
                        header.video_ids,
                        header.backends,
                        header.versions,
                        header.rowless,
                    )
                )
                videos += len(header.video_ids)
            if videos >= batch or n == len(files):
                self.index.add_shards(found)
                found, videos = [], 0

    def _read_new_sightings(self) -> None:
        """The sightings appended since the index last read the log: the log only grows, so
        only its tail is read (all of it if it shrank, which no writer does)."""
        size = self.sightings.size()
        done = int(self.index.get_meta("sources_size") or 0)
        if size == done:
            return
        end = self.sightings.whole_lines_end(size)
        rows = self.sightings.rows_from(done if done <= end else 0, end)
        self.index.set_sources((r["path"], r["video_id"]) for r in rows)
        self.index.set_meta("sources_size", str(end))

    # --- writing ---------------------------------------------------------------------------
    def commit(self, family: Family, items: list[VideoFeatures]) -> Path:
        """Atomically commit one shard of videos, then index it."""
        folder = self.ensure_family(family)
        path = write_shard(folder, family, items)
        self.index_shard(family, path.name, items)
        return path

    def index_shard(
        self,
        family: Family,
        file: str,
        items: list[VideoFeatures] | list[str],
        *,
        backends: list[str] | None = None,
        versions: dict | None = None,
        rowless: int | None = None,
    ) -> None:
        """Index a shard already committed into the family's folder (by this process or by a
        Ray actor); `items` are its videos, or just their ids with `backends` beside them (and
        `rowless`, how many have no rows, if known)."""
        if items and isinstance(items[0], VideoFeatures):
            backends = [item.info.decoded_by for item in items]  # type: ignore[union-attr]
            rowless = sum(len(item.record.features) == 0 for item in items)  # type: ignore[union-attr]
            items = [item.video_id for item in items]  # type: ignore[union-attr]
        if versions is None:
            from harmcache.provenance import library_versions

            versions = library_versions()
        self.index.add_shard(
            family, file, list(items), backends=backends, versions=versions, rowless=rowless
        )

    def record_sources(self, pairs: list[tuple[str, str]]) -> int:
        """Remember path → video id sightings not already known, in one durable append;
        returns how many were new. A read-only cache keeps them to itself."""
        known = self.index.sources_of([path for path, _ in pairs])
        new = list({path: vid for path, vid in pairs if known.get(path) != vid}.items())
        if not new or not self.writable:
            return len(new)
        self.sightings.extend([{"path": path, "video_id": vid} for path, vid in new])
        self.index.set_sources(new)
        self.index.set_meta("sources_size", str(self.sightings.path.stat().st_size))
        return len(new)

    def record_failure(
        self,
        path: str,
        video_id: str | None,
        reason: str,
        message: str,
        family: str | None = None,
    ) -> None:
        """Add a failure to the ledger, with the path made absolute so any reader can find it.
        `family` names the one family that failed (an extractor error); None means the video
        itself could not be used."""
        if not self.writable:
            log.warning(
                "read-only cache: not recording the failure of %s (%s)", shown(path), reason
            )
            return
        row = {"path": str(Path(path).absolute()), "video_id": video_id, "reason": reason}
        self.failures.append(**row, message=message, **({"family": family} if family else {}))

    def known_identities(self, paths: list[str]) -> dict[str, tuple[FileStamp, str]]:
        """Absolute path → (size, mtime_ns, inode) when last hashed and the video id it had."""
        return self.index.memo_of(paths)

    def remember_identities(self, rows: list[tuple[str, FileStamp, str]]) -> None:
        """Memoise freshly hashed files so an unchanged file is never read again."""
        if self.writable and rows:
            self.index.set_memo(rows)

    # --- reading ---------------------------------------------------------------------------
    def families(self) -> list[Family]:
        return self.index.families()

    def family(self, name: str) -> Family:
        for fam in self.families():
            if fam.name == name:
                return fam
        raise CacheError(f"no family {name!r} in {self.root}")

    def committed(self, family: Family | str) -> set[str]:
        name = family if isinstance(family, str) else family.name
        return set(self.index.entries(name))

    def count(self, family: Family | str) -> int:
        """How many videos the family holds."""
        return self.index.count(family if isinstance(family, str) else family.name)

    def holding(self, family: Family | str, video_ids: list[str]) -> set[str]:
        """Those of `video_ids` the family holds: index lookups of these ids alone."""
        name = family if isinstance(family, str) else family.name
        return set(self.index.shards_of(name, video_ids))

    def sources(self) -> dict[str, str]:
        """Every path ever extracted or seen → video id of its bytes."""
        return self.index.sources()

    def plan(self, family: Family | str, video_ids: list[str] | None = None) -> ReadPlan:
        """The reads of `video_ids` (default: every video) of one family: which shard holds
        each, looked up once; see plan.py for what it reads. A `CacheError` names a video the
        family does not hold."""
        name = family if isinstance(family, str) else family.name
        return ReadPlan.from_index(self.index, name, self.family_dir(name), video_ids)

    def load(
        self, family: Family | str, video_ids: list[str] | None = None, *, extras: bool = True
    ) -> dict[str, VideoFeatures]:
        """Features of `video_ids` (default: all) from one family, in that order:
        `plan(family, video_ids).videos()` by id. `extras=False` leaves out the
        extractor-specific raw arrays."""
        videos = self.plan(family, video_ids).videos(extras=extras)
        return {video.video_id: video for video in videos}

    def row_counts(self, family: Family | str, video_ids: list[str] | None = None) -> dict:
        """video id → its number of rows in the family (default: every video), from the
        shards' video tables alone: `plan(family, video_ids).row_counts()`."""
        return self.plan(family, video_ids).row_counts()

    def videos_without_rows(self, family: Family | str) -> int:
        """How many of the family's videos hold zero rows (no sound track for audio; a still
        image for SlowFast)."""
        return sum(1 for n in self.row_counts(family).values() if n == 0)

    def versions(self, family: Family | str) -> list[dict]:
        """The distinct library-version sets the family's videos were made under, each with
        its video count; more than one means the numbers may have drifted between machines."""
        name = family if isinstance(family, str) else family.name
        return [
            {"versions": json.loads(v) if v else {}, "videos": n}
            for v, n in sorted(self.index.versions(name).items())
        ]

    def failed(self) -> dict[str, dict]:
        """Latest failure per path, unless it has since been fixed: the failed family (or, for
        a video that could not be used at all, any family) now holds the path's video. Costs
        what the ledger holds, whatever the cache's size."""
        latest: dict[str, dict] = {}
        for row in self.failures.read():
            latest[row["path"]] = row
        vids = self.index.sources_of([str(Path(path).absolute()) for path in latest])
        vid_of = {path: vids.get(str(Path(path).absolute())) for path in latest}
        asked = {v for v in vid_of.values() if v is not None}
        held = {f.name: self.holding(f, sorted(asked)) for f in self.families()}
        anywhere = set().union(*held.values())

        def fixed(path: str, row: dict) -> bool:
            family = row.get("family")
            return vid_of[path] in (held.get(family, set()) if family else anywhere)

        return {path: row for path, row in latest.items() if not fixed(path, row)}

    def info(self) -> dict:
        """What `cache info` shows: per family its videos, shards, bytes, decoders and library
        versions; the failures by reason; leftovers of crashed writers. Counted by the index
        (and a stat per shard), never by building a family's set of videos."""
        families = []
        for fam in self.families():
            folder = self.family_dir(fam)
            size = sum(p.stat().st_size for p in folder.glob("shard-*.h5"))
            families.append(
                {
                    "family": fam.name,
                    "extractor": fam.extractor,
                    "fingerprint": fam.fingerprint,
                    "random_init": fam.random_init,
                    "videos": self.count(fam),
                    "shards": len(self.index.shard_sizes(fam.name)),
                    "bytes": size,
                    "backends": self.index.backends(fam.name),
                    "versions": self.versions(fam),
                }
            )
        failures = self.failed()
        reasons: dict[str, int] = defaultdict(int)
        for row in failures.values():
            reasons[row["reason"]] += 1
        return {
            "root": str(self.root),
            "videos": self.index.count_source_videos(),
            "families": families,
            "leftover_temporary_files": len(leftovers(self.root)),
            "writable": self.writable,
            "failures": len(failures),
            "failure_reasons": dict(sorted(reasons.items())),
        }


def _writable(root: Path) -> bool:
    """Whether this process may write the cache: its folder and (if present) its index."""
    index = root / "index.sqlite"
    return os.access(root, os.W_OK) and (not index.exists() or os.access(index, os.W_OK))
