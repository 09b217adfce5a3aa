"""Keeping a cache in order: `verify` it, remove what is `stale` (`collect_garbage`), `reindex`
it, `migrate` older shards to the current layout and `compact` small shards into big ones.

Each is a function of an open `FeatureCache`; `harmcache cache verify | gc | reindex | migrate
| compact` call them. Those that write hold the cache's writer lock (see lock.py).
"""

from __future__ import annotations

import contextlib
import logging
import random
import shutil
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harmcache.errors import CacheError, UsageError
from harmcache.store.atomic import TMP_MARK
from harmcache.store.family import Family
from harmcache.store.rewrite import merge_shards, migrate_shard
from harmcache.store.shard import FORMAT_VERSION, read_header, shard_name
from harmcache.store.shard_check import Homes, verify_shard

if TYPE_CHECKING:
    from harmcache.store.cache import FeatureCache

log = logging.getLogger(__name__)

COMPACT_VIDEOS = 1024
"""Videos per shard that `compact` aims at: large reads, and few files to open."""


@dataclass
class MigrationReport:
    """What `migrate` did (or, in a dry run, would do), shards named `<family>/<file>`."""

    migrated: list[str] = field(default_factory=list)
    current: int = 0
    """Shards already in the current layout, left alone."""
    unreadable: list[str] = field(default_factory=list)
    """Shards whose header cannot be read (`cache verify` names the problem)."""


@dataclass
class CompactionReport:
    """What `compact` did (or, in a dry run, would do)."""

    merged: int = 0
    """Small shards folded into bigger ones."""
    written: list[str] = field(default_factory=list)
    """The shards written, `<family>/<file>`."""
    videos: int = 0


def _family_folders(cache: FeatureCache) -> list[Path]:
    return sorted(p for p in (cache.root / "features").glob("*") if p.is_dir())


# --- checking --------------------------------------------------------------------------------


def verify(
    cache: FeatureCache,
    expected_dims: dict[str, int] | None = None,
    *,
    sample: int | None = None,
    seed: int | None = None,
) -> list[str]:
    """Problems found; empty means clean. Opens every shard and checks every array;
    `expected_dims` (extractor → feature width) checks the widths too. `sample` checks that
    many shards per family, drawn at random (`seed`), for a quick look at a huge cache; the
    index is then checked against those shards only. Memory stays bounded by one shard: the
    index, not a set of every video, says where each video's first home is."""
    problems: list[str] = []
    for folder in _family_folders(cache):
        if (folder / "family.json").exists():
            try:
                Family.read(folder / "family.json")
            except CacheError as exc:
                problems.append(str(exc))
        shards = sorted(folder.glob("shard-*.h5"))
        whole = sample is None or sample >= len(shards)
        if not whole:
            shards = sorted(random.Random(seed).sample(shards, sample))
        homes = Homes(cache.index, folder.name)
        for shard in shards:
            problems += verify_shard(shard, folder.name, homes, expected_dims or {})
        if whole and (homes.unindexed or homes.homed != cache.index.count(folder.name)):
            problems.append(
                f"{folder.name}: index lists {cache.index.count(folder.name)} videos but "
                f"shards hold {homes.homed + len(homes.unindexed)}"
            )
    return problems


def reindex(cache: FeatureCache) -> None:
    """Throw the index away and recreate it from shards and logs alone."""
    cache.require_writable("rebuild its index")
    cache.index.clear()
    cache.refresh()


# --- garbage ---------------------------------------------------------------------------------


def stale(
    cache: FeatureCache, current_versions: dict[str, str], drop: tuple[str, ...] = ()
) -> list[Path]:
    """Families no current extractor can produce again (other code version), families named
    in `drop`, empty family folders and temporary files left by crashed writers."""
    out: list[Path] = []
    for folder in _family_folders(cache):
        meta = folder / "family.json"
        extractor, version = None, None
        if meta.exists():
            spec = Family.read(meta).spec
            extractor, version = spec.get("extractor"), str(spec.get("version"))
        old = extractor in current_versions and current_versions[extractor] != version
        empty = not any(folder.glob("shard-*.h5"))
        if folder.name in drop or old or empty:
            out.append(folder)
        else:
            out += sorted(folder.glob(f".*{TMP_MARK}*"))
    out += sorted(cache.root.glob(f".*{TMP_MARK}*"))
    return out


def collect_garbage(
    cache: FeatureCache,
    current_versions: dict[str, str],
    drop: tuple[str, ...] = (),
    *,
    dry_run: bool = False,
) -> list[Path]:
    """Remove (or with `dry_run`, only list) what `stale()` finds, holding the exclusive
    lock: refuses with a `CacheError` while any live writer holds the cache."""
    with cache.lock().exclusive():
        found = stale(cache, current_versions, drop)
        if not dry_run:
            remove(cache, found)
    return found


def remove(cache: FeatureCache, paths: list[Path]) -> None:
    """Delete what `stale()` listed. Call it holding `cache.lock().exclusive()`, so that no
    live writer's temporary file or fresh family can be among them."""
    cache.require_writable("remove files")
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
            cache.index.drop_family(path.name)
        elif path.exists():
            path.unlink()


# --- rewriting shards ------------------------------------------------------------------------


def migrate(cache: FeatureCache, *, dry_run: bool = False) -> MigrationReport:
    """Rewrite every shard of an older layout in the current one, shard by shard, each
    with the same atomic commit as a new shard and under its own name, holding the writer
    lock (so `gc` cannot run meanwhile). A rerun skips shards already current, so an
    interrupted migration resumes; `dry_run` only lists what would be rewritten."""
    report = MigrationReport()
    with contextlib.ExitStack() as stack:
        if not dry_run:
            stack.enter_context(cache.lock().shared())
        for folder in _family_folders(cache):
            for shard in sorted(folder.glob("shard-*.h5")):
                _migrate_one(shard, f"{folder.name}/{shard.name}", report, dry_run=dry_run)
    return report


def _migrate_one(shard: Path, where: str, report: MigrationReport, *, dry_run: bool) -> None:
    try:
        version = read_header(shard).format_version
    except (OSError, ValueError, KeyError) as exc:
        log.warning("not migrating unreadable shard %s: %s", where, exc)
        report.unreadable.append(where)
        return
    if version >= FORMAT_VERSION:
        report.current += 1
        return
    if not dry_run:
        try:
            migrate_shard(shard)
        except (OSError, ValueError, KeyError) as exc:
            raise CacheError(f"cannot migrate {where}: {exc}") from None
        log.info("migrated %s", where)
    report.migrated.append(where)


def compact(
    cache: FeatureCache, *, shard_videos: int = COMPACT_VIDEOS, dry_run: bool = False
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
        raise UsageError(f"{{param}} must be at least 2, got {shard_videos}", "shard_videos")
    cache.require_writable("compact it")
    report = CompactionReport()
    with contextlib.ExitStack() as stack:
        if not dry_run:
            stack.enter_context(cache.lock().shared())
        for family in cache.families():
            for group in _compaction_groups(cache, family, shard_videos):
                report.merged += len(group)
                report.videos += sum(n for _, n in group)
                if dry_run:
                    report.written.append(f"{family.name}/({len(group)} shards)")
                    continue
                report.written.append(f"{family.name}/{_merge(cache, family, group)}")
    return report


def _compaction_groups(
    cache: FeatureCache, family: Family, shard_videos: int
) -> list[list[tuple[str, int]]]:
    """Runs of small shards (name, videos) of one version set, each up to `shard_videos`
    videos; a run of one shard is left alone."""
    by_versions: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for file, n, versions in cache.index.shards(family.name):
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


def _merge(cache: FeatureCache, family: Family, group: list[tuple[str, int]]) -> str:
    folder = cache.family_dir(family)
    old = [file for file, _ in group]
    try:
        header = merge_shards([folder / f for f in old], folder)
    except (OSError, ValueError, KeyError) as exc:
        raise CacheError(f"cannot compact {family.name}: {exc}") from None
    new = shard_name(header.video_ids)
    cache.index.replace_shards(
        family,
        old,
        new,
        header.video_ids,
        backends=header.backends,
        versions=header.versions,
        rowless=header.rowless,
    )
    for file in old:
        if file != new:
            (folder / file).unlink(missing_ok=True)
    log.info("compacted %d shards of %s into %s", len(old), family.name, new)
    return new
