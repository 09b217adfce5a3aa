"""Crash-safe file replacement: write a temporary file, fsync it, rename, fsync the folder."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

TMP_MARK = ".tmp-"


def temporary_name(final: Path) -> Path:
    """A unique hidden sibling of `final`; `cache gc` removes any left behind by a crash."""
    return final.with_name(f".{final.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def leftovers(root: Path) -> list[Path]:
    """Temporary files of a cache's writers that died before committing: in the cache folder
    and in its family folders. Nothing reads them; `cache gc` removes them."""
    return sorted(root.glob(f"features/*/.*{TMP_MARK}*")) + sorted(root.glob(f".*{TMP_MARK}*"))


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(tmp: Path, final: Path) -> None:
    """fsync `tmp`, rename it to `final` atomically, and fsync the folder so the rename lasts."""
    fsync_path(tmp)
    os.replace(tmp, final)
    fsync_path(final.parent)


def write_text_atomic(final: Path, text: str) -> None:
    tmp = temporary_name(final)
    tmp.write_text(text, encoding="utf-8")
    publish(tmp, final)


def append_line_durable(path: Path, line: str) -> None:
    """Append one line and fsync. A crash can tear only the last line; readers skip it."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(line.rstrip("\n") + "\n")
        f.flush()
        os.fsync(f.fileno())
