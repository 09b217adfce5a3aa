"""Turn command-line inputs (files, folders, list files) into an ordered list of video and
image paths."""

from __future__ import annotations

import csv
from pathlib import Path

from harmcache.errors import UsageError
from harmcache.video.image import IMAGE_EXTENSIONS

# Containers FFmpeg opens. Folders are searched for these; a file named explicitly is always tried.
VIDEO_EXTENSIONS = frozenset(
    ".mp4 .m4v .mkv .webm .avi .mov .mpg .mpeg .wmv .flv .ts .mts .m2ts .3gp .ogv .gif".split()
)
LIST_EXTENSIONS = frozenset({".csv", ".txt", ".lst"})
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | IMAGE_EXTENSIONS
"""What a folder is searched for: videos, and still images (one-frame items)."""


def expand_inputs(inputs: list[str | Path]) -> list[Path]:
    """Files as given, folders searched recursively (sorted), list files read line by line.

    Paths that do not exist are kept: the extractor records them as failures so that every
    input is accounted for in the summary. Order is stable and duplicates of a path are dropped.
    """
    if not inputs:
        raise UsageError("no inputs given: pass video files, folders or a .csv/.txt list of paths")
    seen: set[Path] = set()
    out: list[Path] = []
    for raw in inputs:
        for path in _expand_one(Path(raw)):
            key = path.absolute()
            if key not in seen:
                seen.add(key)
                out.append(path)
    return out


def _expand_one(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and p.suffix.lower() in MEDIA_EXTENSIONS
            and not any(part.startswith(".") for part in p.relative_to(path).parts)
        )
    if path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
        return read_path_list(path)
    return [path]


def read_path_list(list_file: Path) -> list[Path]:
    """Paths from a text list (one per line) or a CSV whose first column (or `path`) holds them.

    Relative paths are taken relative to the list file's folder. A list that cannot be read is
    a UsageError: unlike a missing video, it leaves no input to account for.
    """
    try:
        text = list_file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"cannot read the list {list_file}: it is not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"cannot read the list {list_file}: {exc.strerror or exc}") from None
    rows: list[str]
    if list_file.suffix.lower() == ".csv":
        reader = csv.reader(text.splitlines())
        table = [r for r in reader if r and r[0].strip()]
        if table and "path" in [c.strip().lower() for c in table[0]]:
            column = [c.strip().lower() for c in table[0]].index("path")
            rows = [r[column] for r in table[1:] if len(r) > column]
        else:
            rows = [r[0] for r in table]
    else:
        rows = [line.strip() for line in text.splitlines()]
    rows = [r.strip() for r in rows if r.strip() and not r.strip().startswith("#")]
    return [p if p.is_absolute() else list_file.parent / p for p in map(Path, rows)]
