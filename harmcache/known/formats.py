"""Hash files other tools exchange, read into bank entries and written from a bank.

    vpdq  vPDQ's per-frame text, exactly as its reference implementation writes and reads it
          (vpdq/cpp/io/vpdqio.cpp): one line per hashed frame,
          `frame number,quality,hash,timestamp` (the hash 64 hex characters, the timestamp in
          seconds with three decimals). One file is one video: one entry.
    hex   PDQ hashes, one per line: `hash`, `hash,quality` or `hash,quality,name` (what PDQ's
          photo hasher prints; commas or whitespace apart). Blank lines and `#` comments are
          skipped. Each line is one picture: one entry.
    csv   Rows `hash,label`, optionally `hash,label,quality`, with or without a header row
          naming those columns. Each row is one picture: one entry.

A hash given without a quality is taken as passing (`ASSUMED_QUALITY`): lists of hashes are
shared after the low-quality ones were dropped. A malformed line is a `HashFileError` naming the
file and the line; nothing of that file is read.

An entry read from a file is identified by its hashes (`hashes_id`), so the same hashes given
twice, in any of these formats, are one entry. Its label is, first found: the row's own (csv),
the label asked for, the file's name without its suffix.
"""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import numpy as np

from harmcache.errors import UsageError
from harmcache.known.entries import Entry, EntryTable
from harmcache.known.pdq import HASH_BYTES, hex_rows

FORMATS = ("vpdq", "hex", "csv")
ASSUMED_QUALITY = 100
HASH_FILE_SUFFIXES = frozenset({".txt", ".csv", ".hex", ".pdq", ".vpdq", ".tsv"})
"""Names `bank add` reads as hash files, not media."""
CSV_COLUMNS = ("hash", "label", "quality")

_HEX = re.compile(r"[0-9a-fA-F]{64}")


class HashFileError(UsageError):
    """A hash file that cannot be read (exit code 2): the message names the file and line."""


def hashes_id(hashes: np.ndarray) -> str:
    """The id of an entry read from a hash file: the SHA-256 of its hashes' bytes."""
    return hashlib.sha256(np.ascontiguousarray(hashes, dtype=np.uint8).tobytes()).hexdigest()


def detect_format(path: Path) -> str:
    """`csv` by the name, else `vpdq` when the first line holding anything has vPDQ's four
    fields, else `hex`."""
    if path.suffix.lower() == ".csv":
        return "csv"
    for _, line in _lines(path):
        fields = line.split(",")
        return "vpdq" if len(fields) == 4 and _HEX.fullmatch(fields[2].strip()) else "hex"
    return "hex"


def read_hash_file(path: Path, *, label: str | None = None, fmt: str | None = None) -> list[Entry]:
    """The entries a hash file holds (`fmt`: one of `FORMATS`; None: `detect_format`)."""
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt == "vpdq":
        return [read_vpdq(path, label=label)]
    if fmt == "hex":
        return read_hex(path, label=label)
    if fmt == "csv":
        return read_csv(path, label=label)
    raise UsageError(f"unknown hash file format {fmt!r}: one of {', '.join(FORMATS)}")


def read_vpdq(path: Path, *, label: str | None = None) -> Entry:
    """A vPDQ file as one entry (frame numbers are not kept: matching goes by the times)."""
    hashes, quality, times = [], [], []
    for n, line in _lines(path, comments=False):
        fields = line.split(",")
        if len(fields) != 4:
            raise HashFileError(
                f"{path}:{n}: a vPDQ line is `frame,quality,hash,timestamp`, got {line!r}"
            )
        _int(fields[0], path, n, "frame number")
        quality.append(_quality(fields[1], path, n))
        hashes.append(_hash(fields[2], path, n))
        times.append(_float(fields[3], path, n, "timestamp"))
    if not hashes:
        raise HashFileError(f"{path}: no hashes in this vPDQ file")
    rows = np.stack(hashes)
    return Entry(hashes_id(rows), label or path.stem, str(path.absolute()), rows, quality, times)


def read_hex(path: Path, *, label: str | None = None) -> list[Entry]:
    """A list of PDQ hashes, one entry per line."""
    entries = []
    for n, line in _lines(path):
        fields = re.split(r"[,\s]+", line, maxsplit=2)
        row = _hash(fields[0], path, n)
        quality = _quality(fields[1], path, n) if len(fields) > 1 else ASSUMED_QUALITY
        source = f"{path.absolute()}:{n}" + (f" {fields[2].strip()}" if len(fields) > 2 else "")
        entries.append(_picture(row, quality, label or path.stem, source))
    if not entries:
        raise HashFileError(f"{path}: no hashes in this hex list")
    return entries


def read_csv(path: Path, *, label: str | None = None) -> list[Entry]:
    """A `hash,label[,quality]` table, one entry per row."""
    entries = []
    columns = list(CSV_COLUMNS)
    for i, (n, raw) in enumerate(_lines(path, comments=False, keep_raw=True)):
        cells = [c.strip() for c in next(csv.reader([raw]))]
        if i == 0 and cells and cells[0].lower() == "hash":
            columns = [c.lower() for c in cells]
            if any(c not in CSV_COLUMNS for c in columns) or len(set(columns)) < len(columns):
                raise HashFileError(
                    f"{path}:{n}: a header row names some of {', '.join(CSV_COLUMNS)}, "
                    f"hash first, got {raw.strip()!r}"
                )
            continue
        if len(cells) > len(columns):
            raise HashFileError(
                f"{path}:{n}: a row is `{','.join(columns)}`, got {len(cells)} cells"
            )
        value = dict(zip(columns, cells))
        row_hash = _hash(value.get("hash", ""), path, n)
        quality = _quality(value["quality"], path, n) if value.get("quality") else ASSUMED_QUALITY
        own = value.get("label") or label or path.stem
        entries.append(_picture(row_hash, quality, own, f"{path.absolute()}:{n}"))
    if not entries:
        raise HashFileError(f"{path}: no hashes in this CSV file")
    return entries


# Writing ----------------------------------------------------------------------------------------


def write_vpdq(path: Path, entry: Entry) -> Path:
    """One entry's own frames (variant 0) as a vPDQ file; frame numbers are the frames'
    positions in the entry."""
    keep = entry.variant == 0
    lines = [
        f"{i},{int(q)},{h},{t:.3f}\n"
        for i, (q, h, t) in enumerate(
            zip(entry.quality[keep], hex_rows(entry.hashes[keep]), entry.times[keep])
        )
    ]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def export(table: EntryTable, fmt: str, out: Path) -> list[Path]:
    """Write every entry of `table` in format `fmt`: for vpdq, one `<entry id>.txt` per entry
    in the folder `out` (labels are not part of the format); for hex (`hash,quality`) and csv
    (`hash,label,quality`), every frame of every entry, turns and mirrors included, one line
    each, into the file `out`. Returns the files written."""
    if fmt == "vpdq":
        out.mkdir(parents=True, exist_ok=True)
        return [write_vpdq(out / f"{table.ids[i]}.txt", table.entry(i)) for i in range(len(table))]
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}: one of {', '.join(FORMATS)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    hexes = hex_rows(table.hashes)
    with open(out, "w", encoding="utf-8", newline="") as f:
        if fmt == "hex":
            f.writelines(f"{h},{int(q)}\n" for h, q in zip(hexes, table.quality))
        else:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(CSV_COLUMNS)
            labels = [table.labels[i] for i in table.owner]
            writer.writerows(zip(hexes, labels, table.quality.tolist()))
    return [out]


# Parsing helpers --------------------------------------------------------------------------------


def _picture(row: np.ndarray, quality: int, label: str, source: str) -> Entry:
    hashes = row[None]
    return Entry(hashes_id(hashes), label, source, hashes, [quality], [0.0])


def _lines(path: Path, *, comments: bool = True, keep_raw: bool = False):
    """(line number, stripped text) of every line holding anything (and, with `comments`,
    not starting with `#`); `keep_raw` gives the text unstripped, for the csv reader."""
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HashFileError(f"{path}: not a text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise HashFileError(f"{path}: cannot read: {exc.strerror}") from None
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or (comments and line.startswith("#")):
            continue
        yield n, (raw if keep_raw else line)


def _hash(text: str, path: Path, n: int) -> np.ndarray:
    text = text.strip()
    if not _HEX.fullmatch(text):
        raise HashFileError(
            f"{path}:{n}: a PDQ hash is {2 * HASH_BYTES} hex characters, got {text[:80]!r}"
        )
    return np.frombuffer(bytes.fromhex(text), dtype=np.uint8).copy()


def _int(text: str, path: Path, n: int, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise HashFileError(f"{path}:{n}: the {what} is a whole number, got {text!r}") from None


def _quality(text: str, path: Path, n: int) -> int:
    value = _int(text, path, n, "quality")
    if not 0 <= value <= 100:
        raise HashFileError(f"{path}:{n}: a quality is 0 to 100, got {value}")
    return value


def _float(text: str, path: Path, n: int, what: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise HashFileError(f"{path}:{n}: the {what} is a number, got {text!r}") from None
    if not np.isfinite(value):
        raise HashFileError(f"{path}:{n}: the {what} is a finite number, got {text!r}")
    return value
