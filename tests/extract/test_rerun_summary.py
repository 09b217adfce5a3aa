"""A rerun over many cached inputs: planned a chunk at a time, reported as a summary (the
per-input detail in `--json` and `--verbose`), the same plan whatever the chunk size."""

from __future__ import annotations

import shutil

import pytest

from harmcache.extract import inputs
from harmcache.extract.inputs import plan_jobs
from harmcache.extract.pipeline import build_extractors
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.video.encode import write_video
from tests.conftest import coded_frames
from tests.running import TINY_SETTINGS, installed, last_json, ok, tiny_flags

COPIES = 300


@pytest.fixture(scope="module")
def cached_copies(tmp_path_factory):
    """300 inputs (copies of two encoded videos) that a first run has made cached."""
    root = tmp_path_factory.mktemp("rerun")
    sources = [
        write_video(root / "src" / f"s{k}.mp4", coded_frames(6, seed=k), fps=8) for k in range(2)
    ]
    folder = root / "in"
    folder.mkdir()
    for i in range(COPIES):
        shutil.copy(sources[i % 2], folder / f"clip {i:03d}.mp4")
    cache = root / "cache"
    ok("extract", folder, "--out", cache, "--extractors", "clip", *tiny_flags(workers=0))
    return folder, cache


def test_rerun_prints_a_summary_not_a_line_per_input(cached_copies):
    folder, cache = cached_copies
    run = installed("extract", folder, "--out", cache, "--extractors", "clip", *tiny_flags())
    assert run.returncode == 0, run.stderr
    output = run.stdout + run.stderr
    assert f"extracted 0, cached {COPIES}, failed 0 of {COPIES}" in output
    assert f"0 video(s) to extract, {COPIES} already cached" in output
    assert "clip 0" not in output  # no input is named one by one
    assert len(output.splitlines()) < 10


def test_rerun_details_go_to_json_and_verbose(cached_copies):
    folder, cache = cached_copies
    flags = ["--out", cache, "--extractors", "clip", *tiny_flags()]
    report = last_json(installed("extract", folder, *flags, "--json"))
    assert report["cached"] == COPIES
    assert len(report["inputs"]) == COPIES
    assert {r["status"] for r in report["inputs"]} == {"cached"}
    assert len({r["video_id"] for r in report["inputs"]}) == 2
    verbose = installed("extract", folder, *flags, "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    listed = [line for line in verbose.stderr.splitlines() if "cached" in line and "clip " in line]
    assert len(listed) == COPIES


def test_plan_is_the_same_whatever_the_chunk(tmp_path, monkeypatch):
    """Chunks of 3 inputs: a job's duplicate in a later chunk still joins that job, a cached
    video stays cached in every chunk, and a missing file fails where it stands."""
    folder = tmp_path / "in"
    made = [write_video(folder / f"v{k}.mp4", coded_frames(4, seed=k), fps=8) for k in range(4)]
    paths = [*made, folder / "gone.mp4"]
    for k in (0, 2):
        paths.append(folder / f"copy{k}.mp4")
        shutil.copy(made[k], paths[-1])
    extractors = build_extractors(["clip"], TINY_SETTINGS)
    families = [Family.from_spec(ex.spec()) for ex in extractors]
    plans = {}
    for chunk in (10_000, 3):
        monkeypatch.setattr(inputs, "PLAN_CHUNK", chunk)
        with FeatureCache(tmp_path / f"cache{chunk}", create=True) as cache:
            jobs, settled, duplicates = plan_jobs(cache, paths, extractors, families)
            recorded = cache.sources()
        plans[chunk] = (
            [(j.path, j.video_id) for j in jobs],
            {k: (r.status, r.reason) for k, r in settled.items()},
            duplicates,
            recorded,
        )
    assert plans[3] == plans[10_000]
    jobs, settled, duplicates, recorded = plans[3]
    assert [path for path, _ in jobs] == [str(p) for p in made]
    assert settled == {str(folder / "gone.mp4"): ("failed", "missing")}
    assert sorted(d for dups in duplicates.values() for d in dups) == [
        str(folder / "copy0.mp4"),
        str(folder / "copy2.mp4"),
    ]
    assert len(recorded) == 6  # every readable input is recorded as seen
