"""`harmcache train`: fit a head on cached features and write a run directory. Every setting is
a field of `TrainConfig`, declared here once against it (default and help come from there)."""

from __future__ import annotations

from pathlib import Path

import typer

from harmcache.train.config import TrainConfig

from .common import families_option, handle_errors, print_json_line, setup_logging, split_list
from .options import option


def _show_epoch(report) -> None:
    """Per-epoch progress on stderr: loss, the threshold table (0.30-0.70) and the best."""
    typer.echo(report.format(), err=True)


def _show_join(report) -> None:
    for line in report.lines():
        typer.echo(line)


@handle_errors
def train_cmd(
    cache: Path = typer.Option(
        ..., "--cache", help="Feature cache folder (from `harmcache extract`)."
    ),
    labels: Path = typer.Option(
        ...,
        "--labels",
        help="CSV path,label[,split][,group] or path,<category>,...[,split][,group] (0/1, "
        "blank: not labelled), or a folder with one subfolder per class.",
    ),
    taxonomy: Path = option(TrainConfig, "taxonomy"),
    near_duplicates: str = option(TrainConfig, "near_duplicates"),
    head: str = option(TrainConfig, "head"),
    out: Path = typer.Option(..., "--out", help="Run directory to write, e.g. runs/NAME."),
    features: str = option(TrainConfig, "features"),
    families: list[str] = option(TrainConfig, "families", "--family"),
    positive: str = option(TrainConfig, "positive"),
    split_from: Path = option(TrainConfig, "split_from"),
    seed: int = option(TrainConfig, "seed"),
    epochs: int = option(TrainConfig, "epochs"),
    batch_size: int = option(TrainConfig, "batch_size"),
    loss: str = option(TrainConfig, "loss"),
    val_fraction: float = option(TrainConfig, "val_fraction"),
    test_fraction: float = option(TrainConfig, "test_fraction"),
    calibrate: str = option(TrainConfig, "calibrate"),
    head_params: list[str] = option(TrainConfig, "head_params", "--param"),
    events: Path = option(TrainConfig, "events"),
    prompts: Path = typer.Option(
        None, "--prompts", help="With --head prompts: YAML category: [prompt, ...]."
    ),
    weights_dir: Path = typer.Option(
        None, "--weights-dir", help="With --prompts: the folder holding the CLIP weights file."
    ),
    force: bool = option(TrainConfig, "force"),
    json_out: bool = typer.Option(False, "--json", help="Last stdout line: one JSON object."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Train a head on cached features; write a run directory."""
    from harmcache import train
    from harmcache.errors import UsageError
    from harmcache.heads.base import parse_params
    from harmcache.train.rundir import plain

    setup_logging(verbose)
    params = parse_params(head, head_params or [])
    if (head == "prompts") != (prompts is not None):
        raise UsageError("--prompts goes with --head prompts, and --head prompts needs it")
    if prompts is not None:
        from harmcache.prompting import RANDOM_INIT_NOTE, prompt_settings

        params.update(
            prompt_settings(
                cache, prompts, families=families_option(families), weights_dir=weights_dir
            )
        )
        features = features or "clip"
        if params["text_weights"].get("kind") == "random-init":
            typer.echo(f"warning: {RANDOM_INIT_NOTE}", err=True)
    config = TrainConfig(
        head=head,
        features=split_list(features),
        families=families_option(families),
        positive=split_list(positive),
        split_from=split_from,
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        loss=loss,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        calibrate=calibrate,
        head_params=params,
        events=events,
        taxonomy=taxonomy,
        near_duplicates=near_duplicates,
        force=force,
    )
    result = train(cache, labels, config, out, on_join=_show_join, on_epoch=_show_epoch)
    for line in result.lines():
        typer.echo(line)
    if json_out:
        print_json_line(plain(result.to_json()))


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
