"""Where frame hashes come from: media files (hashed here), hash files (formats.py), and a
cache's pdq family (read, never decoded).

A media file's entry is identified by the SHA-256 of its bytes, which is the cache's video id
for the same file, so a video added once from its file and once from a cache is one entry. A
still image's entry holds its eight dihedral hashes (`pdq.DIHEDRAL`), so a turned or mirrored
copy matches; a video's holds every frame where its picture moved, with their mirrors and
centre crops (variants.py), so that trimmed, re-timed, flipped and cropped copies match. A
video read from a cache's pdq family is what the family holds: one frame a second, as shown.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from harmcache.errors import CacheError, UsageError
from harmcache.hashing import sha256_file
from harmcache.known import pdq
from harmcache.known.entries import Entry
from harmcache.known.formats import HASH_FILE_SUFFIXES, read_hash_file
from harmcache.known.variants import known_video

if TYPE_CHECKING:
    from harmcache.store.cache import FeatureCache
    from harmcache.store.family import Family

PDQ_EXTRACTOR = "pdq"
QUALITY_EXTRA, DIHEDRAL_EXTRA = "quality", "dihedral"
"""The pdq family's extras (harmcache/extractors/pdq.py, a layer above this one, writes them;
tests/known/test_sources.py keeps the names equal)."""


# Media ------------------------------------------------------------------------------------------


def media_entry(
    path: Path, *, label: str | None = None, fps: float | None = None, entry_id: str | None = None
) -> Entry:
    """The entry of a video (its frames, mirrors and crops, `variants.known_video`; with `fps`,
    only its frames at `fps` a second, as vPDQ hashes) or a still image (its dihedral hashes);
    `entry_id`: the file's SHA-256 if already known. Raises `VideoError` for a file no decoder
    reads."""
    from harmcache.video.image import is_image

    path = Path(path)
    source = str(path.absolute())
    entry_id = entry_id or sha256_file(path)
    if is_image(path):
        variants, quality = pdq.dihedral_with_quality(_image_frame(path))
        n = len(variants)
        return Entry(
            entry_id, label or path.stem, source, variants,
            np.full(n, quality), np.zeros(n), np.arange(n),
        )  # fmt: skip
    if fps is None:
        hashes, quality, times, variant = known_video(path)
        return Entry(entry_id, label or path.stem, source, hashes, quality, times, variant)
    hashed = pdq.hash_video(path, fps)
    return Entry(entry_id, label or path.stem, source, hashed.hashes, hashed.quality, hashed.times)


def _image_frame(path: Path) -> np.ndarray:
    """A still image decoded as `pdq.hash_video` decodes it: upright, short side at most
    `pdq.DECODE_SHORT_SIDE` (so its own hash equals the one a query of it gets)."""
    from harmcache.video.decode import VideoSource

    with VideoSource(path) as video:
        return video.read(np.zeros(1, dtype=np.int64), max_short_side=pdq.DECODE_SHORT_SIDE)[0]


def is_hash_file(path: Path) -> bool:
    """Whether `bank add` reads `path` as a hash file (by its name), not as media."""
    return Path(path).suffix.lower() in HASH_FILE_SUFFIXES


def expand_sources(inputs: list[Path]) -> list[Path]:
    """Files as given, folders searched recursively for media and hash files (sorted; hidden
    names skipped); a `UsageError` for a path that does not exist."""
    from harmcache.video.intake import MEDIA_EXTENSIONS

    out: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = []
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in files:
                    suffix = os.path.splitext(name)[1].lower()
                    wanted = suffix in MEDIA_EXTENSIONS or suffix in HASH_FILE_SUFFIXES
                    if wanted and not name.startswith("."):
                        found.append(Path(folder) / name)
            out.extend(sorted(found, key=lambda p: p.parts))
        elif path.exists():
            out.append(path)
        else:
            raise UsageError(f"no such file or folder: {path}")
    return list(dict.fromkeys(out))


def hash_file_entries(paths: list[Path], *, label: str | None = None) -> list[Entry]:
    """Every entry of the hash files `paths`, all read before any is used: a malformed file
    stops the command before anything of it is added."""
    return [entry for path in paths for entry in read_hash_file(path, label=label)]


# The cache's pdq family -------------------------------------------------------------------------


@dataclass(frozen=True)
class CachedHashes:
    """One video's rows of a cache's pdq family."""

    video_id: str
    source_path: str
    hashes: pdq.FrameHashes
    dihedral: np.ndarray
    """(8, 32) uint8 for a still image (its turns and mirrors), (0, 32) for a video."""

    def entry(self, label: str | None = None, source: str | None = None) -> Entry:
        """The bank entry of this video: a still image's dihedral hashes, a video's frames."""
        label = label or Path(self.source_path).stem
        source = source or self.source_path
        if len(self.dihedral):
            n = len(self.dihedral)
            quality = np.full(n, self.hashes.quality[0] if len(self.hashes) else 0)
            return Entry(
                self.video_id, label, source, self.dihedral, quality, np.zeros(n), np.arange(n)
            )
        h = self.hashes
        return Entry(self.video_id, label, source, h.hashes, h.quality, h.times)


def pdq_family(cache: FeatureCache, name: str | None = None) -> Family:
    """The cache's pdq family: `name` if given, else its only one; a `CacheError` if there is
    none or several."""
    families = [f for f in cache.families() if f.extractor == PDQ_EXTRACTOR]
    if name is not None:
        chosen = [f for f in families if f.name == name]
        if not chosen:
            known = ", ".join(f.name for f in families) or "none"
            raise CacheError(f"no pdq family {name!r} in {cache.root} (pdq families: {known})")
        return chosen[0]
    if not families:
        raise CacheError(
            f"the cache {cache.root} has no pdq family: `harmcache extract --extractors pdq` "
            "hashes its videos"
        )
    if len(families) > 1:
        names = ", ".join(f.name for f in families)
        raise CacheError(f"the cache {cache.root} has several pdq families ({names}): pick one")
    return families[0]


def cached_hashes(
    cache: FeatureCache, family: Family, video_ids: list[str] | None = None, *, batch: int = 4096
) -> Iterator[CachedHashes]:
    """The rows of `video_ids` (default: every video) of the pdq family, read a batch of
    videos at a time, in the order asked."""
    ids = list(cache.committed(family)) if video_ids is None else list(video_ids)
    if video_ids is None:
        ids.sort()
    for start in range(0, len(ids), batch):
        for video in cache.plan(family, ids[start : start + batch]).videos(extras=True):
            record = video.record
            hashes = pdq.FrameHashes(
                np.asarray(record.timestamp, dtype=np.float64),
                pdq.from_bits(np.asarray(record.features) > 0.5),
                np.asarray(record.extras[QUALITY_EXTRA], dtype=np.int64),
            )
            dihedral = np.asarray(record.extras[DIHEDRAL_EXTRA], dtype=np.uint8)
            yield CachedHashes(
                video.video_id,
                video.source_path,
                hashes,
                dihedral.reshape(-1, pdq.HASH_BYTES),
            )


def video_ids_of(cache: FeatureCache, paths: list[Path]) -> dict[Path, str]:
    """Each path's video id (the SHA-256 of its bytes): from the cache's memo when the file is
    unchanged since the cache hashed it, else hashed here."""
    absolute = {p: str(Path(p).absolute()) for p in paths}
    memo = cache.known_identities(list(absolute.values()))
    out = {}
    for path, key in absolute.items():
        stat = os.stat(path)
        known = memo.get(key)
        if known is not None and tuple(known[0]) == (stat.st_size, stat.st_mtime_ns, stat.st_ino):
            out[path] = known[1]
        else:
            out[path] = sha256_file(path)
    return out
