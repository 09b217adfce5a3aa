"""`harmcache queue`: the review queue of a run over every cached video (no decoding)."""

from __future__ import annotations

from pathlib import Path

import typer

from harmcache.train.localize import DEFAULT_SEGMENTS

from .common import handle_errors, print_json_line, setup_logging


@handle_errors
def queue_cmd(
    run: Path = typer.Option(..., "--run", help="Run directory."),
    cache: Path = typer.Option(None, "--cache", help="Cache to score (default: the run's)."),
    out: Path = typer.Option(..., "--out", help="Queue file to write, e.g. queue.csv."),
    only_unlabeled: Path = typer.Option(
        None, "--only-unlabeled", help="Labels file: leave its videos out of the queue."
    ),
    fmt: str = typer.Option("csv", "--format", help="csv | jsonl."),
    segments: int = typer.Option(
        DEFAULT_SEGMENTS, "--segments", help="Timeline parts per video, for the spans."
    ),
    json_out: bool = typer.Option(False, "--json", help="Last stdout line: one JSON object."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Write the review queue: one row per (video, category) that the run's policy (or its
    thresholds) removes or sends to review, remove first, then by probability."""
    from harmcache.errors import UsageError
    from harmcache.queue import FORMATS, review_queue

    setup_logging(verbose)
    if fmt not in FORMATS:
        raise UsageError(f"--format must be csv or jsonl, got {fmt!r}")
    queue = review_queue(run, cache, only_unlabeled=only_unlabeled, segments=segments)
    written = queue.write(out, fmt)
    counts = queue.counts()
    typer.echo(
        f"scored {queue.scored} cached videos"
        + (f" ({queue.left_out} labelled left out)" if only_unlabeled else "")
        + f"; by the run's {queue.bands}: {counts['remove']} to remove, {counts['review']} to "
        f"review; wrote {written}"
    )
    if json_out:
        print_json_line(
            {"queue": str(written), "scored": queue.scored, "left_out": queue.left_out,
             "bands": queue.bands, **counts}
        )  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("queue")(queue_cmd)
