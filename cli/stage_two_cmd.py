"""Stage two: train | sweep-threshold | evaluate | compare | predict. Each command parses its
options and calls one public function of `harmcache` (train, sweep_threshold, evaluate,
compare, predict); none of them opens a video except predict, which extracts new videos
through the extraction pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from harmcache.errors import UsageError

from .common import handle_errors, print_json_line, setup_logging


def _split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


def _families(values: list[str] | None) -> list[str] | None:
    out = [name for v in values or [] for name in _split_list(v) or []]
    return out or None


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
        features=_split_list(features),
        families=_families(family),
        positive=_split_list(positive),
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
        typer.echo(
            f"{head} on {families}: test {_headline(test)} at threshold {t['threshold']:.2f}"
        )
        typer.echo(f"  tuned on validation: {_headline(val)}")
    else:
        typer.echo(
            f"{head} on {families}: validation (tuned on; no test split) {_headline(val)} at "
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
            typer.echo(_describe_localization(shown))
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


def _headline(m: dict) -> str:
    return (
        f"F1 {m['f1']:.4f} (precision {m['precision']:.4f}, recall {m['recall']:.4f}); "
        f"AUROC {_fmt(m['auroc'])}, AP {_fmt(m['ap'])}"
    )


def _parse_band(value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        high, low = (float(x) for x in value.split(","))
    except ValueError:
        raise UsageError(
            f"--review-band {value!r}: expected P_HIGH,R_LOW, e.g. 0.95,0.98 (block where "
            "precision >= 0.95; review down to where recall >= 0.98)"
        ) from None
    if not (0 < high <= 1 and 0 < low <= 1):
        raise UsageError("--review-band bounds must be in (0, 1]")
    return high, low


def _ci(ci: list[float] | None) -> str:
    return f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "[n/a]"


@handle_errors
def sweep_threshold_cmd(
    run: Path = typer.Argument(None, help="Run directory (or use --scores)."),
    objective: str = typer.Option(
        "f1",
        "--objective",
        help="f1 | f<beta> (f2, f0.5) | recall>=R | precision>=P; with --confidence also "
        "',flagged<=F'.",
    ),
    confidence: float = typer.Option(
        None,
        "--confidence",
        help="Certify the objective at this confidence (e.g. 0.9): Learn-Then-Test.",
    ),
    scores: Path = typer.Option(
        None, "--scores", help="A CSV label,score[,group] from anywhere, instead of a run."
    ),
    grid: str = typer.Option(
        "0.01:0.99:0.01", "--grid", help="start:stop:step, or 'scores' (every distinct score)."
    ),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap replicates (0: none)."),
    review_band: str = typer.Option(
        None,
        "--review-band",
        help="P_HIGH,R_LOW: block at precision>=P_HIGH, review to recall>=R_LOW.",
    ),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    plot: Path = typer.Option(
        None, "--plot", help="With --scores: draw the threshold plot to this PNG."
    ),
    json_out: bool = typer.Option(False, "--json", help="Last stdout line: one JSON object."),
) -> None:
    """Choose the decision threshold on validation scores (or certify it with --confidence);
    rewrite threshold.json and draw a PNG. With --scores, on any label,score CSV."""
    from harmcache import metrics, sweep_threshold
    from harmcache.guarantee import NotCertifiedError
    from harmcache.train.rundir import PLOT_FILE, VAL_SCORES_FILE, plain, read_val_scores
    from harmcache.train.sweep_run import sweep_scores

    if bootstrap < 0:
        raise UsageError("--bootstrap must be 0 or more")
    if (run is None) == (scores is None):
        raise UsageError("give a run directory or --scores FILE.csv, not both or neither")
    if plot is not None and scores is None:
        raise UsageError(f"--plot applies to --scores; a run's plot is {PLOT_FILE} in the run")
    if confidence is not None:
        bootstrap = 0  # the certificate, not a bootstrap, is the statement about uncertainty
    band = _parse_band(review_band)
    try:
        if scores is not None:
            result, data = sweep_scores(
                scores,
                objective,
                grid,
                bootstrap=bootstrap,
                seed=seed,
                review_band=band,
                confidence=confidence,
                plot=plot,
            )
            y, s, where = data.labels, data.scores, f"{scores}"
            notes = data.notes()
        else:
            result = sweep_threshold(
                run,
                objective,
                grid,
                bootstrap=bootstrap,
                seed=seed,
                review_band=band,
                confidence=confidence,
            )
            _, _, y, s = read_val_scores(run / VAL_SCORES_FILE)
            where, notes = "validation", []
    except NotCertifiedError as exc:
        cert = exc.certificate
        if json_out and cert is not None:
            print_json_line(
                plain(
                    {
                        "threshold": None,
                        "objective": cert.objective,
                        "score": None,
                        "certified": False,
                        "needed_positives": cert.needed_positives,
                        "certificate": cert.to_json(),
                    }
                )
            )
        raise
    for note in notes:
        typer.echo(f"note: {note}")
    shown = np.round(np.arange(0.05, 0.951, 0.05), 2)
    rows = metrics.threshold_rows(y, s, np.unique(np.append(shown, result.threshold)))
    chosen = next(r for r in rows if r["threshold"] == result.threshold)
    typer.echo(f"{where}: {result.n} videos, {result.n_positive} harmful; grid {result.grid}")
    typer.echo(metrics.format_rows(rows, chosen))
    if result.certificate is not None:
        typer.echo(describe_certificate(result.certificate, result))
    else:
        typer.echo(
            f"chosen threshold {result.threshold:.4g} for {result.objective}: {result.score:.4f} "
            f"(precision {result.precision:.4f}, recall {result.recall:.4f}, F1 {result.f1:.4f})"
        )
    if result.tie:
        typer.echo(
            f"tie: {result.tie['count']} thresholds from {result.tie['low']:.4g} to "
            f"{result.tie['high']:.4g} reach the best value; took the middle of the longest run"
        )
    if result.bootstrap:
        ci = result.bootstrap["ci"]
        typer.echo(
            f"{result.bootstrap['confidence']:.0%} bootstrap ({result.bootstrap['replicates']}): "
            f"{result.objective} {_ci(ci['score'])}, precision {_ci(ci['precision'])}, "
            f"recall {_ci(ci['recall'])}, threshold {_ci(ci['threshold'])}"
        )
    if result.review_band:
        rb = result.review_band
        typer.echo(
            f"review band: block >= {rb['t_high']:.4g} (precision {rb['block_precision']:.4f}, "
            f"{rb['share_blocked']:.1%} of videos), review [{rb['t_low']:.4g}, {rb['t_high']:.4g}) "
            f"({rb['share_review']:.1%}); recall with review {rb['block_plus_review_recall']:.4f}"
        )
    if run is not None:
        typer.echo(f"wrote {run / 'threshold.json'} and {run / PLOT_FILE}")
    elif plot is not None:
        typer.echo(f"wrote {plot}")
    if json_out:
        print_json_line(plain(result.to_json()))


def describe_certificate(cert: dict, result) -> str:
    """Two lines: the certified threshold with its bound, and what it does on these videos."""
    metric = cert["objective"].split(",")[0].split(">=")[0]
    bounds = "; ".join(
        f"{m} {'<=' if m == 'flagged' else '>='} {b:.4f}" for m, b in cert["bounds"].items()
    )
    empirical = cert["empirical"]
    return (
        f"certified threshold {result.threshold:.4g} for {cert['objective']} at "
        f"{cert['confidence']:.0%} confidence ({cert['method']}, {cert['n_positive']} harmful and "
        f"{cert['n_negative']} safe videos): {bounds} on new videos like these\n"
        f"  on these videos: recall {empirical['recall']:.4f}, precision "
        f"{_fmt(empirical['precision'])}, flagged {empirical['flagged']:.1%}; the {metric} bound "
        "is what the guarantee promises, not these"
    )


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
    from harmcache.train.evaluate import describe_guarantee
    from harmcache.train.rundir import plain

    if subset not in (None, "val", "test"):
        raise UsageError(f"--subset must be val or test, got {subset!r}")
    if subset and labels:
        raise UsageError("--subset and --labels exclude each other")
    result = evaluate(
        run,
        labels=labels,
        cache_dir=cache,
        positive=_split_list(positive),
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
        f"F1 {m['f1']:.4f} AUROC {_fmt(m['auroc'])} AP {_fmt(m['ap'])}"
    )
    c = m["confusion"]
    typer.echo(f"confusion: tn {c['tn']} fp {c['fp']} fn {c['fn']} tp {c['tp']}")
    if result.tuned_on is not None:
        typer.echo(f"tuned on validation: {_headline(result.tuned_on)}")
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
        typer.echo(describe_guarantee(result.guarantee))
    if result.localization is not None:
        typer.echo(_describe_localization(result.localization))
    if json_out:
        print_json_line(plain(result.to_json()))


def _describe_localization(loc: dict) -> str:
    tuned = " (tuned on)" if loc.get("tuned_on") else ""
    return (
        f"per second on {loc['subset']}{tuned}, {loc['timeline']} timeline: segment AUROC "
        f"{_fmt(loc['segment_auroc'])} AP {_fmt(loc['segment_ap'])} over {loc['n_seconds']} "
        f"seconds ({loc['n_positive_seconds']} in events) of {loc['n_videos']} videos "
        f"({loc['n_videos_with_events']} with events)"
    )


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.4f}"


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
            f"{r['precision']:7.4f} {r['recall']:7.4f} {r['f1']:7.4f} {_fmt(r['auroc']):>7} "
            f"{_fmt(r['ap']):>7} {r['val_f1']:7.4f}"
        )
    shown = "test" if result.ranked_by == "test F1" else "validation"
    typer.echo(f"columns are {shown} numbers; 'val f1' is what each threshold was tuned on")
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if json_out:
        print_json_line(
            plain({"runs": result.rows, "warnings": result.warnings, "ranked_by": result.ranked_by})
        )


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
        bounds = ", ".join(
            f"{m} {'<=' if m == 'flagged' else '>='} {b:.3f}"
            for m, b in (g["bounds"] or {}).items()
        )
        line += f"; certified at {g['confidence']:.0%} confidence: {bounds}"
    return line + ")"


def register(app: typer.Typer) -> None:
    """Add the stage-two commands to the harmcache app."""
    app.command("train")(train_cmd)
    app.command("sweep-threshold")(sweep_threshold_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("compare")(compare_cmd)
    app.command("predict")(predict_cmd)
