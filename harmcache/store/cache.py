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
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from harmcache.errors import CacheError, UsageError
from harmcache.hashing import canonical_json
from harmcache.paths import shown
from harmcache.store.atomic import TMP_MARK, write_text_atomic
from harmcache.store.family import Family
from harmcache.store.index import FileStamp, Index
from harmcache.store.ledger import JsonLog
from harmcache.store.lock import CacheLock
from harmcache.store.shard import (
    FORMAT_VERSION,
    Allocator,
    ShardBlock,
    check_arrays,
    merge_shards,
    migrate_shard,
    read_block,
    read_header,
    read_videos,
    row_counts,
    shard_name,
    write_shard,
)
from harmcache.types import VideoFeatures

log = logging.getLogger(__name__)

MARKER = "harmcache.json"
CACHE_FORMAT_VERSION = 1


@dataclass
class MigrationReport:
    """What `FeatureCache.migrate` did (or, in a dry run, would do), shards named
    `<family>/<file>`."""

    migrated: list[str] = field(default_factory=list)
    current: int = 0
    """Shards already in the current layout, left alone."""
    unreadable: list[str] = field(default_factory=list)
    """Shards whose header cannot be read (`cache verify` names the problem)."""


@dataclass
class CompactionReport:
    """What `FeatureCache.compact` did (or, in a dry run, would do)."""

    merged: int = 0
    """Small shards folded into bigger ones."""
    written: list[str] = field(default_factory=list)
    """The shards written, `<family>/<file>`."""
    videos: int = 0


COMPACT_VIDEOS = 1024
"""Videos per shard that `compact` aims at: large reads, and few files to open."""


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

    def _require_writable(self, what: str) -> None:
        if not self.writable:
            raise CacheError(f"the cache {self.root} is read-only: cannot {what}")

    def lock(self) -> CacheLock:
        """The cache's writer lock (see store/lock.py); `extract` holds `.shared()` for its run."""
        self._require_writable("take the writer lock")
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
        self._require_writable(f"add the family {family.name}")
        folder = self.family_dir(family)
        folder.mkdir(parents=True, exist_ok=True)
        meta = folder / "family.json"
        if not meta.exists():
            write_text_atomic(
                meta,
                json.dumps(
                    {
                        "extractor": family.extractor,
                        "fingerprint": family.fingerprint,
                        "spec": family.spec,
                    },
                    indent=2,
                    sort_keys=True,
                ),
            )
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
            for file in sorted(on_disk - known):
                try:
                    header = read_header(folder / file)
                except (OSError, ValueError, KeyError) as exc:
                    log.warning("skipping unreadable shard %s/%s: %s", folder.name, file, exc)
                    continue
                self.index.add_shard(
                    header.family,
                    file,
                    header.video_ids,
                    backends=header.backends,
                    versions=header.versions,
                )
            for file in known - on_disk:
                self.index.drop_shard(folder.name, file)
            meta = folder / "family.json"
            if meta.exists() and folder.name not in {f.name for f in self.index.families()}:
                try:
                    data = read_family_json(meta)
                except CacheError as exc:
                    log.warning("skipping %s", exc)
                    continue
                family = Family(data["extractor"], data["fingerprint"], data["spec"])
                self.index.add_family(family)
        size = str(self.sightings.path.stat().st_size) if self.sightings.path.exists() else "0"
        if self.index.get_meta("sources_size") != size:
            rows = self.sightings.read()
            self.index.set_sources([(r["path"], r["video_id"]) for r in rows])
            self.index.set_meta("sources_size", size)

    def rebuild_index(self) -> None:
        """Throw the index away and recreate it from shards and logs alone."""
        self._require_writable("rebuild its index")
        self.index.clear()
        self.refresh()

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
    ) -> None:
        """Index a shard already committed into the family's folder (by this process or by a
        Ray actor); `items` are its videos, or just their ids with `backends` beside them."""
        if items and isinstance(items[0], VideoFeatures):
            backends = [item.info.decoded_by for item in items]  # type: ignore[union-attr]
            items = [item.video_id for item in items]  # type: ignore[union-attr]
        if versions is None:
            from harmcache.provenance import library_versions

            versions = library_versions()
        self.index.add_shard(family, file, list(items), backends=backends, versions=versions)

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

    def sources(self) -> dict[str, str]:
        """Every path ever extracted or seen → video id of its bytes."""
        return self.index.sources()

    def load(
        self, family: Family | str, video_ids: list[str] | None = None, *, extras: bool = True
    ) -> dict[str, VideoFeatures]:
        """Features of `video_ids` (default: all) from one family, opening each shard once and
        reading each of its arrays in one slice (or, for a few videos of a big shard, only their
        rows); `extras=False` leaves out the extractor-specific raw arrays."""
        name = family if isinstance(family, str) else family.name
        wanted, by_shard = self._plan(name, video_ids)
        out: dict[str, VideoFeatures] = {}
        for shard, vids in by_shard:
            with _reading(name, shard):
                out.update(read_videos(self.family_dir(name) / shard, vids, extras=extras))
        return {vid: out[vid] for vid in wanted}

    def iter_shards(
        self,
        family: Family | str,
        video_ids: list[str] | None = None,
        *,
        extras: bool = False,
        info: tuple[str, ...] | None = None,
        alloc: Allocator | None = None,
        where: dict[str, str] | None = None,
    ) -> Iterator[ShardBlock]:
        """The family's videos (default: all) as one `ShardBlock` of concatenated arrays per
        shard, shards in name order and videos in shard order: no per-video objects, a few
        large reads per shard. `extras=True` adds the extractor-specific arrays; `info` names
        the per-video columns wanted (default: all); `alloc` makes the features arrays;
        `where` (video id → shard, from `index.shards_of`) spares a caller that reads the same
        videos often the index lookup."""
        name = family if isinstance(family, str) else family.name
        _, by_shard = self._plan(name, video_ids, where)
        folder = self.family_dir(name)
        for shard, vids in by_shard:
            with _reading(name, shard):
                block = read_block(
                    folder / shard, vids, extras=extras, family=name, info=info, alloc=alloc
                )
            yield block

    def to_ray_dataset(
        self, family: Family | str, video_ids: list[str] | None = None, *, slice_videos: int = 256
    ):
        """The family's videos (default: all) as a Ray Dataset for cluster training or scoring:
        one block per shard slice of at most `slice_videos` videos, each read by a Ray task with
        `read_block` (so the shards must be on storage the workers can reach). One row per
        video: video_id, features (L, D) float32, frame_index (L,), timestamp (L,), duration."""
        import ray.data

        name = family if isinstance(family, str) else family.name
        _, by_shard = self._plan(name, video_ids)
        folder = str(self.family_dir(name))
        items = [
            {"path": f"{folder}/{shard}", "video_ids": vids[i : i + slice_videos]}
            for shard, vids in by_shard
            for i in range(0, len(vids), slice_videos)
        ]
        if not items:
            raise CacheError(f"family {name} holds no videos to make a dataset of")
        return ray.data.from_items(items, override_num_blocks=len(items)).flat_map(_ray_rows)

    def _plan(
        self, name: str, video_ids: list[str] | None, where: dict[str, str] | None = None
    ) -> tuple[list[str], list[tuple[str, list[str]]]]:
        """The videos asked for and, per shard (in name order), those it holds. A list of ids
        is looked up id by id in the index (or in `where`), never by reading the whole
        family's entries."""
        if video_ids is None:
            entries = self.index.entries(name)
            wanted = list(entries)
        else:
            wanted = list(video_ids)
            entries = where if where is not None else self.index.shards_of(name, wanted)
        missing = [v for v in wanted if v not in entries]
        if missing:
            raise CacheError(f"{len(missing)} video(s) are not in family {name}, e.g. {missing[0]}")
        by_shard: dict[str, list[str]] = defaultdict(list)
        for vid in dict.fromkeys(wanted):
            by_shard[entries[vid]].append(vid)
        return wanted, sorted(by_shard.items())

    def row_counts(self, family: Family | str, video_ids: list[str] | None = None) -> dict:
        """video id → its number of rows in the family (default: every video), from the
        shards' video tables alone."""
        name = family if isinstance(family, str) else family.name
        _, by_shard = self._plan(name, video_ids)
        out: dict[str, int] = {}
        for shard, vids in by_shard:
            with _reading(name, shard):
                lengths = row_counts(self.family_dir(name) / shard)
            out.update((vid, lengths[vid]) for vid in vids)
        return out

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
        a video that could not be used at all, any family) now holds the path's video."""
        sources = self.sources()
        committed = {f.name: self.committed(f) for f in self.families()}
        anywhere = set().union(*committed.values())
        latest: dict[str, dict] = {}
        for row in self.failures.read():
            latest[row["path"]] = row

        def fixed(path: str, row: dict) -> bool:
            vid = sources.get(str(Path(path).absolute()))
            family = row.get("family")
            return vid in (committed.get(family, set()) if family else anywhere)

        return {path: row for path, row in latest.items() if not fixed(path, row)}

    # --- housekeeping ------------------------------------------------------------------------
    def info(self) -> dict:
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
                    "videos": len(self.committed(fam)),
                    "shards": len(self.index.shard_files(fam.name)),
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
            "videos": len(set(self.sources().values())),
            "families": families,
            "leftover_temporary_files": len(self.leftovers()),
            "writable": self.writable,
            "failures": len(failures),
            "failure_reasons": dict(sorted(reasons.items())),
        }

    def verify(self, expected_dims: dict[str, int] | None = None) -> list[str]:
        """Problems found; empty means clean. Opens every shard and checks every array."""
        problems: list[str] = []
        for folder in sorted((self.root / "features").glob("*")):
            if not folder.is_dir():
                continue
            seen: dict[str, str] = {}
            if (folder / "family.json").exists():
                try:
                    read_family_json(folder / "family.json")
                except CacheError as exc:
                    problems.append(str(exc))
            for shard in sorted(folder.glob("shard-*.h5")):
                problems += _verify_shard(shard, folder.name, seen, expected_dims or {})
            indexed = self.index.entries(folder.name)
            if set(indexed) != set(seen):
                problems.append(
                    f"{folder.name}: index lists {len(indexed)} videos but shards hold {len(seen)}"
                )
        return problems

    def leftovers(self) -> list[Path]:
        """Temporary files of writers that died before committing. They were never part of
        the cache (nothing reads them), so they are not problems; `gc` removes them."""
        return sorted(self.root.glob(f"features/*/.*{TMP_MARK}*")) + sorted(
            self.root.glob(f".*{TMP_MARK}*")
        )

    def stale(self, current_versions: dict[str, str], drop: tuple[str, ...] = ()) -> list[Path]:
        """Families no current extractor can produce again (other code version), families named
        in `drop`, empty family folders and temporary files left by crashed writers."""
        out: list[Path] = []
        for folder in sorted((self.root / "features").glob("*")):
            if not folder.is_dir():
                continue
            meta = folder / "family.json"
            extractor, version = None, None
            if meta.exists():
                spec = read_family_json(meta)["spec"]
                extractor, version = spec.get("extractor"), str(spec.get("version"))
            old = extractor in current_versions and current_versions[extractor] != version
            empty = not any(folder.glob("shard-*.h5"))
            if folder.name in drop or old or empty:
                out.append(folder)
            else:
                out += sorted(folder.glob(f".*{TMP_MARK}*"))
        out += sorted(self.root.glob(f".*{TMP_MARK}*"))
        return out

    def collect_garbage(
        self, current_versions: dict[str, str], drop: tuple[str, ...] = (), *, dry_run: bool = False
    ) -> list[Path]:
        """Remove (or with `dry_run`, only list) what `stale()` finds, holding the exclusive
        lock: refuses with a `CacheError` while any live writer holds the cache."""
        with self.lock().exclusive():
            stale = self.stale(current_versions, drop)
            if not dry_run:
                self.remove(stale)
        return stale

    def migrate(self, *, dry_run: bool = False) -> MigrationReport:
        """Rewrite every shard of an older layout in the current one, shard by shard, each
        with the same atomic commit as a new shard and under its own name, holding the writer
        lock (so `gc` cannot run meanwhile). A rerun skips shards already current, so an
        interrupted migration resumes; `dry_run` only lists what would be rewritten."""
        report = MigrationReport()
        if dry_run:
            self._migrate(report, dry_run=True)
        else:
            with self.lock().shared():
                self._migrate(report, dry_run=False)
        return report

    def _migrate(self, report: MigrationReport, *, dry_run: bool) -> None:
        for folder in sorted(p for p in (self.root / "features").glob("*") if p.is_dir()):
            for shard in sorted(folder.glob("shard-*.h5")):
                where = f"{folder.name}/{shard.name}"
                try:
                    version = read_header(shard).format_version
                except (OSError, ValueError, KeyError) as exc:
                    log.warning("not migrating unreadable shard %s: %s", where, exc)
                    report.unreadable.append(where)
                    continue
                if version >= FORMAT_VERSION:
                    report.current += 1
                    continue
                if not dry_run:
                    try:
                        migrate_shard(shard)
                    except (OSError, ValueError, KeyError) as exc:
                        raise CacheError(f"cannot migrate {where}: {exc}") from None
                    log.info("migrated %s", where)
                report.migrated.append(where)

    def compact(
        self, *, shard_videos: int = COMPACT_VIDEOS, dry_run: bool = False
    ) -> CompactionReport:
        """Fold each family's shards of fewer than `shard_videos` videos into shards of about
        `shard_videos`, in name order, never mixing shards made under different library
        versions. Extraction commits small shards (a crash loses at most one); reading them
        back costs a file open each, which a cache of millions of videos should not pay.

        Each merged shard is committed like a new one and read back bit for bit; then the
        index is repointed in one transaction; then the old shards are deleted. A crash at any
        point loses nothing (at worst a video is held twice until the next `compact`, which
        writes it once). Holds the writer lock (so `gc` cannot run meanwhile); run it when no
        training or scoring reads the cache, as deleted shards would vanish under them."""
        if shard_videos < 2:
            raise UsageError(f"--shard-videos must be at least 2, got {shard_videos}")
        self._require_writable("compact it")
        report = CompactionReport()
        with contextlib.ExitStack() as stack:
            if not dry_run:
                stack.enter_context(self.lock().shared())
            for family in self.families():
                for group in self._compaction_groups(family, shard_videos):
                    report.merged += len(group)
                    report.videos += sum(n for _, n in group)
                    if dry_run:
                        report.written.append(f"{family.name}/({len(group)} shards)")
                        continue
                    report.written.append(f"{family.name}/{self._merge(family, group)}")
        return report

    def _compaction_groups(self, family: Family, shard_videos: int) -> list[list[tuple[str, int]]]:
        """Runs of small shards (name, videos) of one version set, each up to `shard_videos`
        videos; a run of one shard is left alone."""
        rows = self.index.db.execute(
            "SELECT file, n_videos, versions FROM shards WHERE family = ? ORDER BY file",
            (family.name,),
        ).fetchall()
        by_versions: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for file, n, versions in rows:
            if n < shard_videos:
                by_versions[versions].append((file, n))
        groups = []
        for shards in by_versions.values():
            group: list[tuple[str, int]] = []
            for shard in shards:
                if group and sum(n for _, n in group) + shard[1] > shard_videos:
                    groups.append(group)
                    group = []
                group.append(shard)
            groups.append(group)
        return [g for g in groups if len(g) > 1]

    def _merge(self, family: Family, group: list[tuple[str, int]]) -> str:
        folder = self.family_dir(family)
        old = [file for file, _ in group]
        try:
            header = merge_shards([folder / f for f in old], folder)
        except (OSError, ValueError, KeyError) as exc:
            raise CacheError(f"cannot compact {family.name}: {exc}") from None
        new = shard_name(header.video_ids)
        self.index.replace_shards(
            family,
            old,
            new,
            header.video_ids,
            backends=header.backends,
            versions=header.versions,
        )
        for file in old:
            if file != new:
                (folder / file).unlink(missing_ok=True)
        log.info("compacted %d shards of %s into %s", len(old), family.name, new)
        return new

    def remove(self, paths: list[Path]) -> None:
        """Delete what `stale()` listed. Call it holding `lock().exclusive()`, so that no live
        writer's temporary file or fresh family can be among them."""
        import shutil

        self._require_writable("remove files")
        for path in paths:
            if path.is_dir():
                shutil.rmtree(path)
                self.index.drop_family(path.name)
            elif path.exists():
                path.unlink()


def _verify_shard(
    shard: Path, family: str, seen: dict[str, str], dims: dict[str, int]
) -> list[str]:
    where = f"{family}/{shard.name}"
    try:
        header = read_header(shard)
    except (OSError, ValueError, KeyError) as exc:
        return [f"{where}: cannot be read ({exc})"]
    problems = []
    if header.family.name != family:
        problems.append(f"{where}: belongs to family {header.family.name}, not {family}")
    if (
        canonical_json(header.family.spec)
        and header.family.fingerprint != Family.from_spec(header.family.spec).fingerprint
    ):
        problems.append(f"{where}: fingerprint does not match its spec")
    ids = header.video_ids
    if len(set(ids)) != len(ids):
        problems.append(f"{where}: holds a video twice")
    for vid in dict.fromkeys(ids):
        if vid in seen:
            problems.append(f"{where}:{vid[:12]}: also held by {seen[vid]} (duplicate)")
        seen.setdefault(vid, shard.name)
    try:
        problems += check_arrays(shard, header, where, dims.get(header.family.extractor))
    except (OSError, KeyError) as exc:
        problems.append(f"{where}: cannot be read ({exc})")
    return problems


@contextmanager
def _reading(family: str, shard: str) -> Iterator[None]:
    """A shard that cannot be read (damaged, truncated, of a newer format, not holding what the
    index says) is a one-line `CacheError` naming it."""
    try:
        yield
    except (OSError, ValueError, KeyError) as exc:
        reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise CacheError(
            f"cannot read the shard {family}/{shard} ({reason}); "
            "`harmcache cache verify` checks every shard"
        ) from None


def _ray_rows(item: dict) -> list[dict]:
    """One shard slice's videos as Ray Dataset rows."""
    block = read_block(Path(item["path"]), list(item["video_ids"]))
    rows = []
    for i, (vid, a, n) in enumerate(
        zip(block.video_ids, block.offsets.tolist(), block.lengths.tolist())
    ):
        rows.append(
            {
                "video_id": vid,
                "features": block.features[a : a + n],
                "frame_index": block.frame_index[a : a + n],
                "timestamp": block.timestamp[a : a + n],
                "duration": float(block.info["duration"][i]),
            }
        )
    return rows


def _writable(root: Path) -> bool:
    """Whether this process may write the cache: its folder and (if present) its index."""
    index = root / "index.sqlite"
    return os.access(root, os.W_OK) and (not index.exists() or os.access(index, os.W_OK))


def read_family_json(path: Path) -> dict:
    """A family folder's family.json, or a CacheError naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not all(key in data for key in ("extractor", "fingerprint", "spec")):
            raise ValueError("extractor, fingerprint or spec is missing")
        return data
    except (OSError, ValueError) as exc:
        raise CacheError(
            f"{path.parent.name}/family.json is damaged ({exc}); "
            "`harmcache cache reindex` rebuilds the index but not this file"
        ) from None
