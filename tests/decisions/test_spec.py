"""`SweepSpec`: one set of sweep options for `harmcache sweep-threshold` and
`harmcache.sweep_threshold()`, with the defects it fixed: the bootstrap default that differed
between the two, and an explicit --grid equal to the default read as "no grid"."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from harmcache.cli.main import app
from typer.testing import CliRunner

from harmcache.decisions.grid import DEFAULT_GRID
from harmcache.decisions.spec import SweepSpec
from harmcache.errors import UsageError
from harmcache.train.sweep_run import sweep_scores
from tests.options import assert_options_match

runner = CliRunner()


@pytest.fixture
def scores_csv(tmp_path):
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.3).astype(int)
    s = np.clip(rng.normal(0.3 + 0.4 * y, 0.15), 0, 1)
    path = tmp_path / "scores.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "score"])
        writer.writerows((yi, f"{si:.6f}") for yi, si in zip(y, s))
    return path


def test_the_command_takes_its_defaults_and_help_from_the_spec():
    assert_options_match(app, "sweep-threshold", SweepSpec)


def test_the_library_bootstraps_by_default_as_the_command_does(scores_csv):
    result, _ = sweep_scores(scores_csv)
    assert result.bootstrap is not None
    assert result.bootstrap["replicates"] == SweepSpec().bootstrap == 1000
    cli = runner.invoke(app, ["sweep-threshold", "--scores", str(scores_csv), "--json"])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout.splitlines()[-1])["bootstrap"]["replicates"] == 1000


def test_an_explicit_default_grid_is_used_by_the_certificate(scores_csv):
    """Given explicitly, 0.01:0.99:0.01 is the grid the certificate tests (99 thresholds);
    left out, a recall certificate tests every distinct score."""

    def certified(*grid: str) -> dict:
        args = ["sweep-threshold", "--scores", str(scores_csv), "--objective", "recall>=0.8"]
        result = runner.invoke(app, [*args, "--confidence", "0.9", *grid, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout.splitlines()[-1])["certificate"]

    distinct = len(np.unique(np.loadtxt(scores_csv, delimiter=",", skiprows=1)[:, 1]))
    assert certified()["n_thresholds"] == distinct
    assert certified("--grid", DEFAULT_GRID)["n_thresholds"] == 99
    assert certified("--grid", "0.1:0.9:0.1")["n_thresholds"] == 9


@pytest.mark.parametrize(
    "options, message",
    [
        ({"bootstrap": -1}, "bootstrap must be at least 0, got -1"),
        ({"confidence": 1.0}, "confidence must lie strictly between 0 and 1, got 1"),
        ({"objective": "accuracy"}, "objective 'accuracy': cannot read 'accuracy'"),
        ({"confidence": 0.9, "review_band": "0.9,0.9"}, "--review-band and --confidence"),
        ({"review_band": "0.9"}, "--review-band '0.9': expected P_HIGH,R_LOW"),
    ],
)
def test_bad_options_name_the_setting(options, message):
    with pytest.raises(UsageError, match=message) as info:
        SweepSpec(**options)
    assert isinstance(info.value, ValueError)


def test_build_keeps_a_spec_and_replaces_what_is_given():
    spec = SweepSpec.build(SweepSpec(bootstrap=5), objective="f2", grid=None)
    assert (spec.objective, spec.bootstrap, spec.grid) == ("f2", 5, None)
    with pytest.raises(TypeError, match="unknown sweep option"):
        SweepSpec.build(bootsrap=5)


def test_review_band_as_text_or_pair():
    assert SweepSpec(review_band="0.95,0.98").band() == (0.95, 0.98)
    assert SweepSpec(review_band=(0.95, 0.98)).band() == (0.95, 0.98)
