"""What every command shares: turning library errors into one-line messages and exit codes."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import typer

from harmcache.errors import HarmcacheError


def handle_errors(fn: Callable) -> Callable:
    """Run a command; a HarmcacheError becomes `error: ...` on stderr and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HarmcacheError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted: committed shards are kept; rerun to finish", err=True)
            raise typer.Exit(130) from None

    return wrapper


def print_json_line(obj: Any) -> None:
    """The last line of stdout: one JSON object, for scripts."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, sort_keys=True) + "\n")
    sys.stdout.flush()


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Third-party libraries are chatty at INFO.
    for noisy in ("ultralytics", "matplotlib", "h5py", "PIL", "ray"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
