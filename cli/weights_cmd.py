"""`harmcache weights download | list`: fetch canonical weights for offline machines."""

from __future__ import annotations

import socket
from pathlib import Path

import typer

from harmcache.errors import WeightsUnavailable

from .common import handle_errors

weights_app = typer.Typer(
    help="Get the canonical backbone weights for --weights-dir.", no_args_is_help=True
)


def _names(extractors: str | None) -> list[str]:
    from harmcache.extractors.base import available_extractors, get_extractor

    if not extractors:
        return available_extractors()
    names = [n.strip() for n in extractors.split(",") if n.strip()]
    for name in names:
        get_extractor(name)  # an unknown name is a UsageError that lists the choices
    return names


def download_weights(name: str, target_dir: Path) -> Path:
    """One extractor's canonical weights into `target_dir`, under a socket timeout."""
    from harmcache.extractors.base import get_extractor
    from harmcache.extractors.weights import DOWNLOAD_TIMEOUT_S, OFFLINE_ENV, offline

    cls = get_extractor(name)
    if offline():
        raise WeightsUnavailable(f"{OFFLINE_ENV}=1 forbids downloading {cls.weight_files[0]}")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        path = Path(cls.download(target_dir))
    except (OSError, RuntimeError, ValueError) as exc:  # network, disk or checksum failures
        raise WeightsUnavailable(
            f"download of {cls.weight_files[0]} for {name} failed ({exc})"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    if not path.is_file():
        raise WeightsUnavailable(f"download of {cls.weight_files[0]} for {name} left no file")
    return path


@weights_app.command("download")
@handle_errors
def download(
    target_dir: Path = typer.Argument(..., help="Folder to save the weight files in."),
    extractors: str | None = typer.Option(
        None, "--extractors", help="Comma-separated extractors (default: all)."
    ),
) -> None:
    """Download each extractor's canonical weights into DIR, for --weights-dir DIR."""
    target_dir.mkdir(parents=True, exist_ok=True)
    for name in _names(extractors):
        path = download_weights(name, target_dir)
        typer.echo(f"{name}: saved {path}")
    typer.echo(f"use them with --weights-dir {target_dir}")


@weights_app.command("list")
@handle_errors
def list_files() -> None:
    """Each extractor's canonical weight files, as looked for in --weights-dir."""
    from harmcache.extractors.base import available_extractors, get_extractor

    for name in available_extractors():
        typer.echo(f"{name}: {', '.join(get_extractor(name).weight_files)}")


def register(app: typer.Typer) -> None:
    app.add_typer(weights_app, name="weights")
