"""Who is writing a cache: writers hold a shared lock for their whole run, `gc` an exclusive one.

Several `extract` runs may write one cache at once (shard names derive from their contents, so
they never collide), but `gc` must never delete the temporary file of a live writer. flock locks
die with their process, so a writer killed with SIGKILL releases its lock and its leftovers
become fair game. On network filesystems flock may be local to one machine: run `gc` on a cache
shared by several hosts only when none of them is extracting.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from harmcache.errors import CacheError

LOCK_FILE = "writer.lock"


class CacheLock:
    """A flock on `DIR/writer.lock`: `shared()` for writers, `exclusive()` for housekeeping."""

    def __init__(self, root: Path):
        self.path = root / LOCK_FILE
        self._fd: int | None = None

    def shared(self) -> CacheLock:
        """Held by a writer for its run; waits only while a `gc` holds the exclusive lock."""
        return self._take(fcntl.LOCK_SH, busy=None)

    def exclusive(self) -> CacheLock:
        """Held while removing leftovers; refuses at once while any writer is alive."""
        return self._take(
            fcntl.LOCK_EX | fcntl.LOCK_NB,
            busy=f"{self.path.parent} is being written by a running extract; "
            "rerun `cache gc` when it has finished (leftovers of dead writers are kept until then)",
        )

    def _take(self, flags: int, busy: str | None) -> CacheLock:
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise CacheError(
                f"cannot write to the cache {self.path.parent}: {exc.strerror.lower()}"
            ) from None
        try:
            fcntl.flock(self._fd, flags)
        except BlockingIOError:
            self.release()
            raise CacheError(busy or "the cache is locked") from None
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> CacheLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
