"""`harmcache sweep-threshold`: choose (or certify) the decision threshold from scores. Its
options are `SweepSpec`'s fields, with the library's defaults and help texts."""

from __future__ import annotations

from pathlib import Path

import typer

from harmcache.decisions.spec import SweepSpec
from harmcache.errors import DataError, UsageError

from .common import handle_errors, print_json_line
from .options import option


@handle_errors
def sweep_threshold_cmd(
    run: Path = typer.Argument(None, help="Run directory (or use --scores)."),
    objective: str = option(SweepSpec, "objective"),
    confidence: float = option(SweepSpec, "confidence"),
    scores: Path = typer.Option(
        None,
        "--scores",
        help="A CSV label,score[,group] from anywhere, instead of a run (with --policy: "
        "path, then C and C_score for each category C).",
    ),
    policy: Path = typer.Option(
        None,
        "--policy",
        help="A policy YAML: certify remove and review thresholds for every category, "
        "jointly at its confidence, on the run's val_category_scores.csv (or --scores).",
    ),
    category: str = typer.Option(
        None, "--category", help="A run with several categories: sweep this one (default: all)."
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
    rewrite threshold.json and draw a PNG. With --scores, on any label,score CSV. With
    --policy, certify a policy over categories and write policy.json."""
    from harmcache import sweep_threshold
    from harmcache.decisions.certify import NotCertifiedError
    from harmcache.decisions.report import not_certified_json, sweep_lines
    from harmcache.train.rundir import (
        PLOT_FILE,
        VAL_SCORES_FILE,
        plain,
        read_categories,
        read_val_scores,
    )
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
    if policy is not None:
        if spec != SweepSpec() or plot is not None:
            raise UsageError(
                "--policy sets every threshold from the policy file; leave out --objective, "
                "--confidence, --grid, --bootstrap, --review-band, --seed and --plot"
            )
        return _policy(policy, run, scores, json_out)
    if plot is not None and scores is None:
        raise UsageError(f"--plot applies to --scores; a run's plot is {PLOT_FILE} in the run")
    if category is not None and run is None:
        raise UsageError("--category names a category of a run; a scores file has one")
    names = read_categories(run) if run is not None else []
    if run is not None and (category is not None or len(names) > 1):
        return _categories(run, names, category, spec, json_out)
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


def _categories(
    run: Path, names: list[str], category: str | None, spec: SweepSpec, json_out: bool
) -> None:
    """Sweep one category of a run (`--category`), or each of them, with the same settings."""
    from harmcache import sweep_threshold
    from harmcache.decisions.report import sweep_lines
    from harmcache.train.rundir import (
        PLOT_FILE,
        THRESHOLD_FILE,
        VAL_SCORES_FILE,
        category_dir,
        plain,
        read_val_scores,
    )

    results = {}
    for name in [category] if category is not None else names:
        result = sweep_threshold(run, spec=spec, category=name)
        where = category_dir(run, name, len(names))
        _, _, y, s = read_val_scores(where / VAL_SCORES_FILE)
        typer.echo(f"category {name}:")
        for line in sweep_lines(result, y, s, "validation"):
            typer.echo(f"  {line}")
        typer.echo(f"  wrote {where / THRESHOLD_FILE} and {where / PLOT_FILE}")
        results[name] = plain(result.to_json())
    if json_out:
        print_json_line({"categories": results})


def _policy(policy: Path, run: Path | None, scores: Path | None, json_out: bool) -> None:
    """Certify `policy` on a run's per-category validation scores (writing policy.json) or on
    a scores file. Refused promises are reported and the command still succeeds; when none
    certifies it ends with a DataError."""
    from harmcache.decisions.category_scores import (
        CATEGORY_SCORES_FILE,
        POLICY_FILE,
        CategoryScores,
    )
    from harmcache.decisions.policy import Policy, certify_policy
    from harmcache.train.rundir import write_json

    rules = Policy.read(policy)
    if run is not None:
        if not (run / CATEGORY_SCORES_FILE).is_file():
            raise UsageError(
                f"{run} has no {CATEGORY_SCORES_FILE}: a policy is certified on a run's "
                "per-category validation scores (or give --scores FILE.csv)"
            )
        scores = run / CATEGORY_SCORES_FILE
    cert = certify_policy(rules, CategoryScores.read_csv(scores))
    for line in cert.lines():
        typer.echo(line)
    refused = [
        f"{c} {b}" for c, bands in cert.bands.items() for b, x in bands.items() if not x.certified
    ]
    if refused and cert.any_certified:
        typer.echo(f"refused: {', '.join(refused)}; the other promises stand")
    if run is not None and cert.any_certified:
        write_json(run / POLICY_FILE, cert.to_json())
        typer.echo(f"wrote {run / POLICY_FILE}")
    if json_out:
        print_json_line(cert.to_json())
    if not cert.any_certified:
        raise DataError(
            f"no promise of {policy.name} could be certified ({', '.join(refused)}); see the "
            "lines above for what each would need"
            + (f"; {run / POLICY_FILE} was not written" if run is not None else "")
        )


def register(app: typer.Typer) -> None:
    app.command("sweep-threshold")(sweep_threshold_cmd)
