"""`harmcache train`: fit a head on cached features and write a run directory."""

from __future__ import annotations

from pathlib import Path

import typer

from harmcache.errors import UsageError

from .common import (
    describe_localization,
    families_option,
    handle_errors,
    headline,
    print_json_line,
    setup_logging,
    split_list,
)


def _epoch_printer():
    """Per-epoch progress on stderr: loss, the threshold table (0.30-0.70) and the best."""

    def show(report) -> None:
        typer.echo(report.format(), err=True)

    return show


@handle_errors
def train_cmd(
    cache: Path = typer.Option(
        ..., "--cache", help="Feature cache folder (from `harmcache extract`)."
    ),
    labels: Path = typer.Option(
        ...,
        "--labels",
        help="CSV path,label[,split][,group], or a folder with one subfolder per class.",
    ),
    head: str = typer.Option("transformer", "--head", help="transformer | lightgbm | logreg."),
    out: Path = typer.Option(..., "--out", help="Run directory to write, e.g. runs/NAME."),
    features: str = typer.Option(
        None, "--features", help="Extractors to use, e.g. clip,yolo,slowfast (default: all cached)."
    ),
    family: list[str] = typer.Option(
        None, "--family", help="Pin a shard family by name when several fingerprints exist."
    ),
    positive: str = typer.Option(
        None, "--positive", help="Label names that mean harmful, e.g. harmful,violence."
    ),
    split_from: Path = typer.Option(
        None, "--split-from", help="Reuse this run's split; new videos are assigned by its rule."
    ),
    seed: int = typer.Option(0, "--seed", help="Seeds the split and the head."),
    epochs: int = typer.Option(None, "--epochs", help="Transformer: most epochs (default 10)."),
    batch_size: int = typer.Option(None, "--batch-size", help="Transformer: videos per step (4)."),
    loss: str = typer.Option(None, "--loss", help="Transformer: bce (default) or focal."),
    val_fraction: float = typer.Option(
        0.15, "--val-fraction", help="Share for validation (early stopping, threshold)."
    ),
    test_fraction: float = typer.Option(
        0.15, "--test-fraction", help="Share held out for the reported numbers (0: none)."
    ),
    calibrate: str = typer.Option(
        "isotonic", "--calibrate", help="isotonic | sigmoid | none: score → probability map."
    ),
    param: list[str] = typer.Option(
        None, "--param", help="Any head setting as KEY=VALUE (repeatable), e.g. d_model=64."
    ),
    events: Path = typer.Option(
        None, "--events", help="Events CSV: per-second AUROC/AP on validation and test at the end."
    ),
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists."),
    json_out: bool = typer.Option(False, "--json", help="Last stdout line: one JSON object."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Train a head on cached features; write a run directory."""
    from harmcache import train
    from harmcache.heads.base import parse_params
    from harmcache.train.rundir import plain

    setup_logging(verbose)
    params = parse_params(head, param or [])
    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("loss", loss)):
        if value is not None:
            if head != "transformer":
                raise UsageError(f"--{key.replace('_', '-')} applies to the transformer head only")
            params[key] = value

    def show_join(report) -> None:
        for line in report.lines():
            typer.echo(line)

    result = train(
        cache,
        labels,
        head,
        out,
        features=split_list(features),
        families=families_option(family),
        positive=split_list(positive),
        split_from=split_from,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        calibrate=calibrate,
        head_params=params,
        force=force,
        on_join=show_join,
        on_epoch=_epoch_printer(),
        events=events,
    )
    val, test, t = result.metrics["val"], result.metrics["test"], result.threshold
    c = result.counts
    for extractor, why in sorted(result.join.left_out.items()):
        typer.echo(f"warning: left {extractor} features out: {why}; pass --features to choose")
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(
        "split: "
        + ", ".join(f"{part} {c[part]['videos']} ({c[part]['harmful']} harmful)" for part in c)
    )
    families = ", ".join(f.name for f in result.families.values())
    if test is not None:
        typer.echo(f"{head} on {families}: test {headline(test)} at threshold {t['threshold']:.2f}")
        typer.echo(f"  tuned on validation: {headline(val)}")
    else:
        typer.echo(
            f"{head} on {families}: validation (tuned on; no test split) {headline(val)} at "
            f"threshold {t['threshold']:.2f}"
        )
    cal = result.metrics["calibration"]
    if cal["method"] != "none" and "test" in cal:
        typer.echo(
            f"calibration ({cal['method']}, fitted on validation): test ECE "
            f"{cal['test']['ece_raw']:.4f} -> {cal['test']['ece']:.4f}, Brier "
            f"{cal['test']['brier_raw']:.4f} -> {cal['test']['brier']:.4f}"
        )
    loc = result.metrics.get("localization")
    for part in ("val", "test") if loc else ():
        if part in loc:
            subset = "validation" if part == "val" else "test"
            shown = {**loc[part], "subset": subset, "tuned_on": part == "val"}
            typer.echo(describe_localization(shown))
    typer.echo(f"run written to {result.run_dir}; next: harmcache sweep-threshold {result.run_dir}")
    if json_out:
        shown = test if test is not None else val
        print_json_line(
            plain(
                {
                    "run": str(result.run_dir),
                    "subset": "test" if test is not None else "validation",
                    **{k: shown[k] for k in ("precision", "recall", "f1", "auroc", "ap")},
                    "threshold": t["threshold"],
                    "tuned_on": val,
                    "calibration": cal,
                    "join": result.join.to_json(),
                    "counts": c,
                    "notes": result.notes,
                    "localization": loc,
                }
            )
        )


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
