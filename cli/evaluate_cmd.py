"""`harmcache evaluate` and `harmcache compare`: a run's numbers at its stored threshold."""

from __future__ import annotations

from pathlib import Path

import typer

from harmcache.errors import UsageError

from .common import describe_localization, fmt, handle_errors, headline, print_json_line, split_list


@handle_errors
def evaluate_cmd(
    run: Path = typer.Argument(..., help="Run directory."),
    labels: Path = typer.Option(None, "--labels", help="Held-out labels (CSV or class folders)."),
    cache: Path = typer.Option(
        None, "--cache", help="Cache holding those videos (default: the run's)."
    ),
    positive: str = typer.Option(None, "--positive", help="Label names that mean harmful."),
    subset: str = typer.Option(
        None, "--subset", help="val | test (default: test if the run has one)."
    ),
    plot: Path = typer.Option(
        None, "--plot", help="Reliability diagram PNG (default: reliability.png in the run)."
    ),
    events: Path = typer.Option(
        None, "--events", help="Events CSV (path or video_id, start, end): per-second AUROC/AP."
    ),
    json_out: bool = typer.Option(False, "--json", help="Last stdout line: one JSON object."),
) -> None:
    """Metrics at the run's stored threshold, from the cache alone: test numbers first, the
    validation numbers it was tuned on, calibration, and whether a certified guarantee held.
    With --events, also per-second AUROC and AP of each video's timeline."""
    from harmcache import evaluate
    from harmcache.decisions.operating_point import describe_check
    from harmcache.train.rundir import plain

    if subset not in (None, "val", "test"):
        raise UsageError(f"--subset must be val or test, got {subset!r}")
    if subset and labels:
        raise UsageError("--subset and --labels exclude each other")
    result = evaluate(
        run,
        labels=labels,
        cache_dir=cache,
        positive=split_list(positive),
        subset=subset,
        plot=plot if plot is not None else True,
        events=events,
    )
    m = result.metrics
    for note in result.notes:
        typer.echo(f"note: {note}")
    objective = f" ({result.objective})" if result.objective else ""
    typer.echo(
        f"{result.subset}: {m['n']} videos ({m['n_positive']} harmful) at threshold "
        f"{m['threshold']:.4g}{objective}: precision {m['precision']:.4f} recall {m['recall']:.4f} "
        f"F1 {m['f1']:.4f} AUROC {fmt(m['auroc'])} AP {fmt(m['ap'])}"
    )
    c = m["confusion"]
    typer.echo(f"confusion: tn {c['tn']} fp {c['fp']} fn {c['fn']} tp {c['tp']}")
    if result.tuned_on is not None:
        typer.echo(f"tuned on validation: {headline(result.tuned_on)}")
    cal = result.calibration
    if cal is not None and cal["method"] != "none":
        typer.echo(
            f"calibration ({cal['method']}) on {result.subset}: ECE {cal['ece_raw']:.4f} -> "
            f"{cal['ece']:.4f}, Brier {cal['brier_raw']:.4f} -> {cal['brier']:.4f}"
            + (f"; reliability diagram {cal['plot']}" if cal["plot"] else "")
        )
    elif cal is not None:
        typer.echo(
            f"uncalibrated scores on {result.subset}: ECE {cal['ece_raw']:.4f}, Brier "
            f"{cal['brier_raw']:.4f} (train with --calibrate isotonic for probabilities)"
        )
    if result.guarantee is not None:
        typer.echo(describe_check(result.guarantee))
    if result.localization is not None:
        typer.echo(describe_localization(result.localization))
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
    typer.echo(f"ranked by {result.ranked_by}")
    columns = ("thr", "prec", "recall", "f1", "auroc", "ap", "val f1")
    typer.echo(f"{'run':30} {'head':12} " + " ".join(f"{c:>7}" for c in columns))
    for r in result.rows:
        typer.echo(
            f"{Path(r['run']).name[:30]:30} {str(r['head'])[:12]:12} {r['threshold']:7.3f} "
            f"{r['precision']:7.4f} {r['recall']:7.4f} {r['f1']:7.4f} {fmt(r['auroc']):>7} "
            f"{fmt(r['ap']):>7} {r['val_f1']:7.4f}"
        )
    shown = "test" if result.ranked_by == "test F1" else "validation"
    typer.echo(f"columns are {shown} numbers; 'val f1' is what each threshold was tuned on")
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if json_out:
        print_json_line(
            plain({"runs": result.rows, "warnings": result.warnings, "ranked_by": result.ranked_by})
        )


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_cmd)
    app.command("compare")(compare_cmd)
