"""`harmcache sweep-threshold`: choose (or certify) the decision threshold from scores. Its
options are `SweepSpec`'s fields, with the library's defaults and help texts."""

from __future__ import annotations

from pathlib import Path

import typer

from harmcache.decisions.spec import SweepSpec
from harmcache.errors import UsageError

from .common import handle_errors, print_json_line
from .options import option


@handle_errors
def sweep_threshold_cmd(
    run: Path = typer.Argument(None, help="Run directory (or use --scores)."),
    objective: str = option(SweepSpec, "objective"),
    confidence: float = option(SweepSpec, "confidence"),
    scores: Path = typer.Option(
        None, "--scores", help="A CSV label,score[,group] from anywhere, instead of a run."
    ),
    grid: str = option(SweepSpec, "grid"),
    bootstrap: int = option(SweepSpec, "bootstrap"),
    review_band: str = option(SweepSpec, "review_band"),
    seed: int = option(SweepSpec, "seed"),
    plot: Path = typer.Option(
        None, "--plot", help="With --scores: draw the threshold plot to this PNG."
    ),
    json_out: bool = typer.Option(False, "--json", help="Last stdout line: one JSON object."),
) -> None:
    """Choose the decision threshold on validation scores (or certify it with --confidence);
    rewrite threshold.json and draw a PNG. With --scores, on any label,score CSV."""
    from harmcache import sweep_threshold
    from harmcache.decisions.certify import NotCertifiedError
    from harmcache.decisions.report import not_certified_json, sweep_lines
    from harmcache.train.rundir import PLOT_FILE, VAL_SCORES_FILE, plain, read_val_scores
    from harmcache.train.sweep_run import sweep_scores

    spec = SweepSpec(
        objective=objective,
        confidence=confidence,
        grid=grid,
        bootstrap=bootstrap,
        review_band=review_band,
        seed=seed,
    )
    if (run is None) == (scores is None):
        raise UsageError("give a run directory or --scores FILE.csv, not both or neither")
    if plot is not None and scores is None:
        raise UsageError(f"--plot applies to --scores; a run's plot is {PLOT_FILE} in the run")
    try:
        if scores is not None:
            result, data = sweep_scores(scores, spec=spec, plot=plot)
            y, s, where, notes = data.labels, data.scores, f"{scores}", data.notes()
        else:
            result = sweep_threshold(run, spec=spec)
            _, _, y, s = read_val_scores(run / VAL_SCORES_FILE)
            where, notes = "validation", []
    except NotCertifiedError as exc:
        if json_out and exc.certificate is not None:
            print_json_line(plain(not_certified_json(exc.certificate)))
        raise
    for note in notes:
        typer.echo(f"note: {note}")
    for line in sweep_lines(result, y, s, where):
        typer.echo(line)
    if run is not None:
        typer.echo(f"wrote {run / 'threshold.json'} and {run / PLOT_FILE}")
    elif plot is not None:
        typer.echo(f"wrote {plot}")
    if json_out:
        print_json_line(plain(result.to_json()))


def register(app: typer.Typer) -> None:
    app.command("sweep-threshold")(sweep_threshold_cmd)
