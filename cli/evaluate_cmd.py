"""`harmcache evaluate` and `harmcache compare`: a run's numbers at its stored threshold.
Evaluate's settings are the fields of `EvaluateConfig`, declared here once against it."""

from __future__ import annotations

from pathlib import Path

import typer

from harmcache.train.config import EvaluateConfig, keywords

from .common import handle_errors, print_json_line, split_list
from .options import option


@handle_errors
def evaluate_cmd(
    run: Path = typer.Argument(..., help="Run directory."),
    labels: Path = option(EvaluateConfig, "labels"),
    cache_dir: Path = option(EvaluateConfig, "cache_dir", "--cache"),
    positive: str = option(EvaluateConfig, "positive"),
    subset: str = option(EvaluateConfig, "subset"),
    plot: Path = typer.Option(
        None, "--plot", help="Reliability diagram PNG (default: reliability.png in the run)."
    ),
    events: Path = option(EvaluateConfig, "events"),
    json_out: bool = typer.Option(False, "--json", help="Last stdout line: one JSON object."),
) -> None:
    """Metrics at the run's stored threshold, from the cache alone: test numbers first, the
    validation numbers it was tuned on, calibration, and whether a certified guarantee held.
    With --events, also per-second AUROC and AP of each video's timeline."""
    from harmcache import evaluate
    from harmcache.train.rundir import plain

    config = EvaluateConfig(
        labels=labels,
        cache_dir=cache_dir,
        positive=split_list(positive),
        subset=subset,
        events=events,
    )
    result = evaluate(run, **keywords(config), plot=plot if plot is not None else True)
    for line in result.lines():
        typer.echo(line)
    if json_out:
        print_json_line(plain(result.to_json()))


@handle_errors
def compare_cmd(
    runs: list[Path] = typer.Argument(..., help="Run directories."),
    json_out: bool = typer.Option(False, "--json", help="Last stdout line: one JSON object."),
) -> None:
    """Runs side by side, best first by test F1 at each run's threshold; the validation F1
    they were tuned on is shown beside it."""
    from harmcache import compare
    from harmcache.train.rundir import plain

    result = compare(runs)
    for line in result.lines():
        typer.echo(line)
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if json_out:
        print_json_line(plain(result.to_json()))


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_cmd)
    app.command("compare")(compare_cmd)
