"""Hash banks: folders of known content's frame hashes, which survive a crash as the cache does.

BANK/harmcache-bank.json        marker and format version
BANK/segments/seg-*.npz         committed segments, each a batch of whole entries
BANK/segments/.seg-*.tmp-*      a segment being written, or left by a writer that died: never read

A bank holds entries (entries.py): one piece of known content each, with its frame hashes.

A writer commits entries a segment at a time: a temporary file, fsynced, renamed into place
(store/atomic.py), so a segment is all there or absent and a `kill -9` costs only the entries
not yet committed. Opening a bank reads every committed segment (the bank is their union, in
name order; an id already seen is dropped, so two writers adding the same content leave one
entry). No manifest or index is kept on disk: `EntryTable.index` is rebuilt on first use.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
import zipfile
from pathlib import Path

import numpy as np

from harmcache.errors import CacheError
from harmcache.known.entries import Entry, EntryTable
from harmcache.store.atomic import TMP_MARK, publish, temporary_name, write_text_atomic

log = logging.getLogger(__name__)

MARKER = "harmcache-bank.json"
BANK_FORMAT_VERSION = 2
"""2: a frame's variant may be a crop (`pdq.VARIANTS` past the eight dihedral ones), which a
harmcache reading version 1 would not know; version 1 banks and segments read as before."""
SEGMENT_FORMAT = "harmcache-bank-segment"


class BankError(CacheError):
    """The bank is missing, damaged, or the folder is not a bank (exit code 4, as the cache's)."""


class HashBank:
    """Open the bank folder `root` (with `create=True`, make it: the folder must be new or
    empty). A `BankError` if it is not a bank."""

    def __init__(self, root: str | Path, *, create: bool = False):
        self.root = Path(root)
        marker = self.root / MARKER
        if not marker.is_file():
            if not create:
                raise BankError(
                    f"{self.root} is not a hash bank (no {MARKER}); `harmcache bank add` makes one"
                )
            _create(self.root)
        self.version = _check_marker(marker)
        self.segments_dir = self.root / "segments"
        self.refresh()

    def refresh(self) -> None:
        """Read every committed segment again (another writer may have added some)."""
        self.segments: list[str] = []
        self.damaged: list[str] = []
        tables = []
        for path in sorted(self.segments_dir.glob("seg-*.npz")):
            try:
                tables.append(read_segment(path))
            except BankError as exc:
                log.warning("%s", exc)
                self.damaged.append(path.name)
                continue
            self.segments.append(path.name)
        self._tables = tables
        self._table: EntryTable | None = None
        self._id_set = {entry_id for table in tables for entry_id in table.ids}

    @property
    def table(self) -> EntryTable:
        """Every entry of the bank, in columns (its segments joined on first use)."""
        if self._table is None:
            self._table = EntryTable.concat(self._tables)
            self._tables = [self._table]
        return self._table

    def __len__(self) -> int:
        return len(self._id_set)

    def __contains__(self, entry_id: str) -> bool:
        return entry_id in self._id_set

    def writer(self, **limits) -> BankWriter:
        """A `BankWriter` adding entries to this bank (`limits`: see `BankWriter`)."""
        return BankWriter(self, **limits)

    def _committed(self, path: Path, table: EntryTable) -> None:
        """Take a segment this process just committed into the open bank."""
        self.segments.append(path.name)
        self._tables.append(table)
        self._table = None
        self._id_set.update(table.ids)

    def _upgrade_marker(self) -> None:
        """Stamp an older bank with this format before a segment of it is written, so that an
        older harmcache refuses the bank by name instead of skipping the segment as damaged."""
        if self.version < BANK_FORMAT_VERSION:
            _write_marker(self.root)
            self.version = BANK_FORMAT_VERSION

    def leftovers(self) -> list[Path]:
        """Temporary segments of writers that died before committing: never read."""
        return sorted(self.segments_dir.glob(f".seg-*{TMP_MARK}*"))

    def info(self) -> dict:
        """What `bank info` shows: entries, frames, entries per label, bytes on disk."""
        labels: dict[str, int] = {}
        for label in self.table.labels:
            labels[label] = labels.get(label, 0) + 1
        files = [self.segments_dir / name for name in self.segments]
        return {
            "root": str(self.root),
            "entries": len(self.table),
            "frames": self.table.frames,
            "labels": dict(sorted(labels.items())),
            "segments": len(self.segments),
            "bytes": sum(p.stat().st_size for p in files if p.exists()),
            "damaged_segments": list(self.damaged),
            "leftover_temporary_files": len(self.leftovers()),
        }


SEGMENT_FRAMES = 65536
"""Frames a writer gathers before it commits a segment (2 MiB of hashes)."""
SEGMENT_SECONDS = 10.0
"""Seconds a writer holds uncommitted entries at most: a slow run of videos loses no more."""


class BankWriter:
    """Adds entries to a bank, committing a segment whenever `max_frames` frames are waiting
    or `max_seconds` have passed since the first of them, and on `close`. Use it as a context
    manager: whatever was added is committed on the way out, error or not."""

    def __init__(
        self,
        bank: HashBank,
        *,
        max_frames: int = SEGMENT_FRAMES,
        max_seconds: float = SEGMENT_SECONDS,
    ):
        if max_frames < 1 or max_seconds < 0:
            raise ValueError("a writer commits after at least one frame and no negative time")
        self.bank = bank
        self.max_frames = max_frames
        self.max_seconds = max_seconds
        self._waiting = 0
        self.pending: list[Entry] = []
        self.added = 0
        self.skipped = 0
        self._since = 0.0
        self._ids = set(bank._id_set)
        bank.segments_dir.mkdir(parents=True, exist_ok=True)

    def skips(self, entry_id: str) -> bool:
        """Whether `add` would skip an entry of this id (the bank or this writer has one),
        counted as skipped if so: a caller asks before hashing a file it need not hash."""
        if entry_id in self._ids:
            self.skipped += 1
            return True
        return False

    def add(self, entry: Entry) -> bool:
        """Queue `entry`; False (and nothing queued) when the bank already holds its id."""
        if self.skips(entry.entry_id):
            return False
        self._ids.add(entry.entry_id)
        if not self.pending:
            self._since = time.monotonic()
        self.pending.append(entry)
        self.added += 1
        self._waiting += len(entry)
        if self._waiting >= self.max_frames or time.monotonic() - self._since >= self.max_seconds:
            self.commit()
        return True

    def commit(self) -> Path | None:
        """Commit the waiting entries as one segment; its path (None if nothing waited)."""
        if not self.pending:
            return None
        table = EntryTable.from_entries(self.pending)
        self.bank._upgrade_marker()
        path = write_segment(self.bank.segments_dir, table)
        self.bank._committed(path, table)
        self.pending, self._waiting = [], 0
        return path

    def close(self) -> None:
        self.commit()

    def __enter__(self) -> BankWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_segment(folder: Path, table: EntryTable) -> Path:
    """Commit `table` as a new segment in `folder`: written beside it, fsynced, renamed."""
    # Name order is commit order (time first), so a bank reads its entries as they came.
    final = folder / f"seg-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.npz"
    meta = {
        "format": SEGMENT_FORMAT,
        "version": BANK_FORMAT_VERSION,
        "entries": [list(row) for row in zip(table.ids, table.labels, table.sources)],
    }
    tmp = temporary_name(final)
    with open(tmp, "wb") as f:
        np.savez(
            f,
            meta=np.frombuffer(json.dumps(meta).encode("utf-8", "surrogateescape"), np.uint8),
            counts=np.diff(table.starts),
            hashes=table.hashes,
            quality=table.quality.astype(np.int16),
            times=table.times,
            variant=table.variant,
        )
    publish(tmp, final)
    return final


def read_segment(path: Path) -> EntryTable:
    """A committed segment, or a `BankError` naming it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode("utf-8", "surrogateescape"))
            if meta.get("format") != SEGMENT_FORMAT:
                raise ValueError("not a bank segment")
            if meta.get("version", 0) > BANK_FORMAT_VERSION:
                raise ValueError(f"segment format {meta['version']} is newer than this harmcache")
            ids, labels, sources = zip(*meta["entries"]) if meta["entries"] else ((), (), ())
            return EntryTable(
                ids, labels, sources, z["counts"], z["hashes"], z["quality"], z["times"],
                z["variant"],
            )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        raise BankError(f"damaged bank segment {path}: {exc}") from None


def _create(root: Path) -> None:
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise BankError(f"{root} exists and is not a hash bank: give a new or empty folder")
    try:
        (root / "segments").mkdir(parents=True, exist_ok=True)
        _write_marker(root)
    except OSError as exc:
        raise BankError(f"cannot create a hash bank in {root}: {exc.strerror}") from None


def _write_marker(root: Path) -> None:
    text = json.dumps({"format": "harmcache-bank", "version": BANK_FORMAT_VERSION})
    write_text_atomic(root / MARKER, text)


def _check_marker(marker: Path) -> int:
    """The bank's format version; a `BankError` for a damaged, foreign or newer marker."""
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BankError(f"{marker} is damaged: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != "harmcache-bank":
        raise BankError(f"{marker} is not a hash bank's marker")
    if data.get("version", 0) > BANK_FORMAT_VERSION:
        raise BankError(f"{marker.parent} is a newer bank format ({data['version']})")
    return int(data.get("version", 0))
