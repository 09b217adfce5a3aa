"""docs/python-api.md runs: its stage-two half on a synthetic cache, and the whole session
(stage one included) once `harmcache.extract` is there."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from tests.synthetic_cache import build

DOC = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def blocks(*, stage_one: bool) -> list[str]:
    """The doc's Python blocks in order; those marked `<!-- stage one -->` only if asked."""
    found = re.findall(r"(<!-- stage one -->\n)?```python\n(.*?)```", DOC.read_text(), re.S)
    return [code for marker, code in found if stage_one or not marker]


def run_blocks(codes: list[str], namespace: dict) -> dict:
    for code in codes:
        exec(compile(code, str(DOC), "exec"), namespace)
    return namespace


def test_the_stage_two_half_runs_on_a_synthetic_cache(tmp_path):
    syn = build(tmp_path, 60, signal=3.0)
    done = run_blocks(
        blocks(stage_one=False),
        {"work": tmp_path, "cache": syn.cache.root, "labels": syn.labels_csv},
    )
    assert done["tf"].metrics["val"]["f1"] >= 0.9
    assert done["tf"].metrics["test"]["n"] > 0 and done["comparison"].ranked_by == "test F1"
    assert (tmp_path / "runs" / "gbm" / "threshold.json").exists()
    assert (tmp_path / "gbm-head" / "head.json").exists()
    assert len(done["data"]) == 60


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("harmcache.extract.api") is None,
    reason="harmcache.extract.api is not written yet",
)
def test_the_whole_session_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    done = run_blocks(blocks(stage_one=True), {})
    assert done["summary"].count("extracted") == 29
    assert done["p"].status == "scored"
