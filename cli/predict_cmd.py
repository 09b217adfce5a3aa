"""`harmcache predict`: score new videos with a run."""

from __future__ import annotations

from pathlib import Path

import typer

from harmcache.decisions.operating_point import bounds_line

from .common import handle_errors, print_json_line, setup_logging


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60):02d}:{seconds % 60:04.1f}"


@handle_errors
def predict_cmd(
    videos: list[Path] = typer.Argument(..., help="Video files."),
    run: Path = typer.Option(..., "--run", help="Run directory."),
    cache: Path = typer.Option(None, "--cache", help="Cache to extract into (default: the run's)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N for extraction."),
    weights_dir: Path = typer.Option(None, "--weights-dir", help="Folder with backbone weights."),
    segments: int = typer.Option(
        8,
        "--segments",
        help="Timeline segments per video (0: none); the mil head uses its snippets.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Last stdout line: one JSON object."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Score videos with a run: extract them with its backbones, print label, probability, the
    spans at or above the threshold and the timeline (the MIL head's snippet scores, or for
    other heads each segment scored on its own rows)."""
    from harmcache import predict
    from harmcache.train.rundir import plain

    setup_logging(verbose)
    results = predict(videos, run, cache, device=device, weights_dir=weights_dir, segments=segments)
    for p in results:
        if p.status != "scored":
            typer.echo(f"{p.path}: failed ({p.reason}: {p.message})")
            continue
        typer.echo(f"{p.path}: {p.label} {_operating_point(p)}")
        if p.spans:
            typer.echo(f"  spans at or above {p.threshold:.4g}:")
            for span in p.spans:
                typer.echo(
                    f"    {_clock(span['start'])}-{_clock(span['end'])} peak {span['peak']:.3f}"
                )
        else:
            typer.echo(f"  no span at or above {p.threshold:.4g}")
        typer.echo("  timeline:")
        for s in p.timeline:
            if s.score is None:
                typer.echo(f"  {_clock(s.start)}-{_clock(s.end)}      -")
            else:
                bar = "#" * round(s.score * 20)
                typer.echo(f"  {_clock(s.start)}-{_clock(s.end)} {s.score:.3f} {bar}")
    if json_out:
        print_json_line(plain({"predictions": [p.to_json() for p in results]}))


def _operating_point(p) -> str:
    """p=<calibrated probability> (score <raw>, threshold <t> for <objective>[; guarantee])."""
    prob = "uncalibrated" if p.probability is None else f"p={p.probability:.4f}"
    line = f"{prob} (score {p.score:.4f}, threshold {p.threshold:.4g} for {p.objective}"
    g = p.guarantee
    if g is not None:
        bounds = bounds_line(g["bounds"] or {}, digits=3, sep=", ")
        line += f"; certified at {g['confidence']:.0%} confidence: {bounds}"
    return line + ")"


def register(app: typer.Typer) -> None:
    app.command("predict")(predict_cmd)
