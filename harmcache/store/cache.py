"""The feature cache: shard families, the index, the failure ledger and the path sightings.

DIR/harmcache.json              marker and format version
DIR/features/<family>/family.json  the family's extractor, fingerprint and full spec
DIR/features/<family>/shard-*.h5   committed shards (see shard.py)
DIR/failures.jsonl              failure ledger: path, video_id, reason, message, time
DIR/sources.jsonl               every path seen and the video id of its bytes
DIR/index.sqlite                rebuildable index
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from harmcache.errors import CacheError
from harmcache.extractors.base import FeatureRecord
from harmcache.hashing import canonical_json
from harmcache.store.atomic import TMP_MARK, write_text_atomic
from harmcache.store.family import Family
from harmcache.store.index import Index
from harmcache.store.ledger import JsonLog
from harmcache.store.shard import ShardItem, read_group, read_header, write_shard
from harmcache.video.decode import VideoInfo

log = logging.getLogger(__name__)

MARKER = "harmcache.json"
CACHE_FORMAT_VERSION = 1


@dataclass
class CachedVideo:
    """One video's features from one family, with what probing learned about the video."""

    video_id: str
    record: FeatureRecord
    info: VideoInfo
    source_path: str


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
        elif create and not os.access(self.root, os.W_OK):
            raise CacheError(f"cannot write to the cache {self.root}: permission denied")
        self.failures = JsonLog(self.root / "failures.jsonl")
        self.sightings = JsonLog(self.root / "sources.jsonl")
        self.index = Index(self.root / "index.sqlite")
        self.refresh()

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
                self.index.add_shard(header.family, file, header.video_ids)
            for file in known - on_disk:
                self.index.drop_shard(folder.name, file)
            meta = folder / "family.json"
            if meta.exists() and folder.name not in {f.name for f in self.index.families()}:
                data = json.loads(meta.read_text())
                self.index.add_family(Family(data["extractor"], data["fingerprint"], data["spec"]))
        size = str(self.sightings.path.stat().st_size) if self.sightings.path.exists() else "0"
        if self.index.get_meta("sources_size") != size:
            rows = self.sightings.read()
            self.index.set_sources([(r["path"], r["video_id"]) for r in rows])
            self.index.set_meta("sources_size", size)

    def rebuild_index(self) -> None:
        """Throw the index away and recreate it from shards and logs alone."""
        self.index.clear()
        self.refresh()

    # --- writing ---------------------------------------------------------------------------
    def commit(self, family: Family, items: list[ShardItem]) -> Path:
        """Atomically commit one shard of videos, then index it."""
        folder = self.ensure_family(family)
        path = write_shard(folder, family, items)
        self.index.add_shard(family, path.name, [i.video_id for i in items])
        return path

    def record_sources(self, pairs: list[tuple[str, str]]) -> None:
        for path, vid in pairs:
            self.sightings.append(path=path, video_id=vid)
        self.index.set_sources(pairs)
        self.index.set_meta("sources_size", str(self.sightings.path.stat().st_size))

    def record_failure(self, path: str, video_id: str | None, reason: str, message: str) -> None:
        self.failures.append(path=path, video_id=video_id, reason=reason, message=message)

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
    ) -> dict[str, CachedVideo]:
        """Features of `video_ids` (default: all) from one family, opening each shard once;
        `extras=False` leaves out the extractor-specific raw arrays."""
        name = family if isinstance(family, str) else family.name
        entries = self.index.entries(name)
        wanted = list(entries) if video_ids is None else list(video_ids)
        missing = [v for v in wanted if v not in entries]
        if missing:
            raise CacheError(f"{len(missing)} video(s) are not in family {name}, e.g. {missing[0]}")
        by_shard: dict[str, list[str]] = defaultdict(list)
        for vid in wanted:
            by_shard[entries[vid]].append(vid)
        out: dict[str, CachedVideo] = {}
        for shard, vids in sorted(by_shard.items()):
            with h5py.File(self.family_dir(name) / shard, "r") as f:
                for vid in vids:
                    record, info, source = read_group(f[vid], extras=extras)
                    out[vid] = CachedVideo(vid, record, info, source)
        return {vid: out[vid] for vid in wanted}

    def failed(self) -> dict[str, dict]:
        """Latest failure per path, unless that path's video has since been committed."""
        sources = self.sources()
        committed = set().union(*(self.committed(f) for f in self.families()))
        latest: dict[str, dict] = {}
        for row in self.failures.read():
            latest[row["path"]] = row
        return {
            path: row
            for path, row in latest.items()
            if sources.get(str(Path(path).absolute())) not in committed
        }

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
                spec = json.loads(meta.read_text())["spec"]
                extractor, version = spec.get("extractor"), str(spec.get("version"))
            old = extractor in current_versions and current_versions[extractor] != version
            empty = not any(folder.glob("shard-*.h5"))
            if folder.name in drop or old or empty:
                out.append(folder)
            else:
                out += sorted(folder.glob(f".*{TMP_MARK}*"))
        out += sorted(self.root.glob(f".*{TMP_MARK}*"))
        return out

    def remove(self, paths: list[Path]) -> None:
        import shutil

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
    dim = dims.get(header.family.extractor)
    with h5py.File(shard, "r") as f:
        groups = set(f.keys())
        if groups != set(header.video_ids):
            problems.append(f"{where}: groups do not match the video_ids attribute")
        for vid in header.video_ids:
            if vid not in f:
                continue
            if vid in seen:
                problems.append(f"{where}:{vid[:12]}: also held by {seen[vid]} (duplicate)")
            seen.setdefault(vid, shard.name)
            g = f[vid]
            try:
                feats, idx, ts = g["features"], g["frame_index"], g["timestamp"]
            except KeyError as exc:
                problems.append(f"{where}:{vid[:12]}: missing dataset {exc}")
                continue
            if feats.dtype != np.float32 or feats.ndim != 2:
                problems.append(
                    f"{where}:{vid[:12]}: features must be 2-d float32, "
                    f"got {feats.dtype} {feats.shape}"
                )
                continue
            if dim is not None and feats.shape[1] != dim:
                problems.append(
                    f"{where}:{vid[:12]}: features are {feats.shape[1]}-d, expected {dim}"
                )
            if idx.shape != (feats.shape[0],) or ts.shape != (feats.shape[0],):
                problems.append(
                    f"{where}:{vid[:12]}: frame_index/timestamp do not match {feats.shape[0]} rows"
                )
            if not np.isfinite(feats[()]).all():
                problems.append(f"{where}:{vid[:12]}: features hold NaN or inf")
    return problems
