"""What every command shares: turning library errors into one-line messages and exit codes."""

from __future__ import annotations

import errno
import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from harmcache.errors import HarmcacheError, UsageError
from harmcache.log_streams import follow_stderr
from harmcache.paths import json_line, shown

# The system refusing an operation: a full disk, a missing permission, a read-only mount. Any
# write anywhere can meet these, and none of them can be a bug in harmcache, so they end a command
# with one line (exit 1) wherever they arise. Other OSErrors (no such file, is a folder, file
# exists) are as often a wrong path in our own code as in the user's: they are translated where a
# user's path is opened, and anywhere else they stay loud tracebacks.
SYSTEM_REFUSALS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS})
SYSTEM_REFUSED_EXIT = 1


def handle_errors(fn: Callable) -> Callable:
    """Run a command; a HarmcacheError becomes `error: ...` on stderr and its exit code, and so
    does the system refusing an operation (see SYSTEM_REFUSALS)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HarmcacheError as exc:
            said = exc.as_flag() if isinstance(exc, UsageError) else str(exc)
            typer.echo(f"error: {shown(said)}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:
            if exc.errno not in SYSTEM_REFUSALS:
                raise
            where = f": {shown(str(exc.filename))}" if exc.filename else ""
            typer.echo(f"error: {exc.strerror or exc}{where}", err=True)
            raise typer.Exit(SYSTEM_REFUSED_EXIT) from None
        except KeyboardInterrupt:
            typer.echo("interrupted: committed shards are kept; rerun to finish", err=True)
            raise typer.Exit(130) from None

    return wrapper


def make_folder(folder: Path, what: str = "") -> None:
    """Create `folder` (and its parents) for output; a UsageError if a file is in the way.
    `what` names the option, e.g. "--out ", for the message."""
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocker == folder:
        raise UsageError(f"{what}{folder} is not a folder")
    if blocker is not None:
        raise UsageError(f"{what}{folder} is not a folder: {blocker} is a file")
    folder.mkdir(parents=True, exist_ok=True)


def print_json_line(obj: Any) -> None:
    """The last line of stdout: one JSON object, for scripts (`paths.json_line`: every path in
    it is the file's exact name)."""
    sys.stdout.write(json_line(obj) + "\n")
    sys.stdout.flush()


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    follow_stderr()  # a handler set up by an earlier in-process command keeps its stream
    # Third-party libraries are chatty at INFO.
    for noisy in ("ultralytics", "matplotlib", "h5py", "PIL", "ray"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


def families_option(values: list[str] | None) -> list[str] | None:
    out = [name for v in values or [] for name in split_list(v) or []]
    return out or None
