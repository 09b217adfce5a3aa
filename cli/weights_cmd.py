"""`harmcache weights download | list`: fetch canonical weights for offline machines."""

from __future__ import annotations

from pathlib import Path

import typer

from harmcache.errors import UsageError

from .common import handle_errors, make_folder

weights_app = typer.Typer(
    help="Get the canonical backbone weights for --weights-dir.", no_args_is_help=True
)


def _names(extractors: str | None) -> list[str]:
    from harmcache.extractors.base import available_extractors, get_extractor

    if not extractors:  # every extractor that has weights (PDQ hashing has none)
        return [name for name in available_extractors() if get_extractor(name).weight_files]
    names = [n.strip() for n in extractors.split(",") if n.strip()]
    if not names:
        raise UsageError(
            f"--extractors {extractors!r} names no extractor; "
            f"choose from {', '.join(available_extractors())}"
        )
    for name in names:
        get_extractor(name)  # an unknown name is a UsageError that lists the choices
    return names


@weights_app.command("download")
@handle_errors
def download(
    target_dir: Path = typer.Argument(..., help="Folder to save the weight files in."),
    extractors: str | None = typer.Option(
        None, "--extractors", help="Comma-separated extractors (default: all)."
    ),
) -> None:
    """Download each extractor's canonical weights into DIR, for --weights-dir DIR."""
    from harmcache.extractors.base import get_extractor
    from harmcache.extractors.weights import download_weights

    names = _names(extractors)
    make_folder(target_dir)
    for name in names:
        if not get_extractor(name).weight_files:
            typer.echo(f"{name}: no weights to download")
            continue
        path = download_weights(get_extractor(name), target_dir)
        typer.echo(f"{name}: saved {path}")
    typer.echo(f"use them with --weights-dir {target_dir}")


@weights_app.command("list")
@handle_errors
def list_files() -> None:
    """Each extractor's canonical weight files, as looked for in --weights-dir."""
    from harmcache.extractors.base import available_extractors, get_extractor

    for name in available_extractors():
        typer.echo(f"{name}: {', '.join(get_extractor(name).weight_files) or 'no weights'}")


def register(app: typer.Typer) -> None:
    app.add_typer(weights_app, name="weights")
