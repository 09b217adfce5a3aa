"""`harmcache predict`: score new videos with a run. Its settings are the fields of
`PredictConfig`, declared here once against it."""

from __future__ import annotations

from pathlib import Path

import typer

from harmcache.train.config import PredictConfig, keywords

from .common import handle_errors, print_json_line, setup_logging
from .options import option


@handle_errors
def predict_cmd(
    videos: list[Path] = typer.Argument(..., help="Video files."),
    run: Path = typer.Option(..., "--run", help="Run directory."),
    cache_dir: Path = option(PredictConfig, "cache_dir", "--cache"),
    device: str = option(PredictConfig, "device"),
    weights_dir: Path = option(PredictConfig, "weights_dir"),
    segments: int = option(PredictConfig, "segments"),
    bank: Path = option(PredictConfig, "bank"),
    json_out: bool = typer.Option(False, "--json", help="Last stdout line: one JSON object."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Score videos with a run: extract them with its backbones, print label, probability, the
    spans at or above the threshold and the timeline (the MIL head's snippet scores, or for
    other heads each segment scored on its own rows)."""
    from harmcache import predict
    from harmcache.train.rundir import plain

    setup_logging(verbose)
    config = PredictConfig(
        cache_dir=cache_dir, device=device, weights_dir=weights_dir, segments=segments, bank=bank
    )
    results = predict(videos, run, **keywords(config))
    for p in results:
        for line in p.lines():
            typer.echo(line)
    if json_out:
        print_json_line(plain({"predictions": [p.to_json() for p in results]}))


def register(app: typer.Typer) -> None:
    app.command("predict")(predict_cmd)
