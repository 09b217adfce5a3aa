"""`harmcache demo-data`: the built-in demo set."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import handle_errors


def demo_data(
    out: Path = typer.Argument(..., help="Folder to write the clips and labels.csv into."),
    n_safe: int = typer.Option(13, help="Safe clips; harmful clips are 2.68 times as many."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Write a small synthetic labelled video set with a planted harmful/safe difference."""
    from harmcache.demo import make_demo_set

    labels = make_demo_set(out, n_safe=n_safe, seed=seed)
    typer.echo(f"wrote demo videos and {labels}")


def register(app: typer.Typer) -> None:
    app.command("demo-data")(handle_errors(demo_data))
