"""The scale benchmark (bench/scale_bench.py) over a tiny synthetic cache: the cache is one the
command line takes for a real one, every step runs and is measured, and the result's growth and
summary come from the measured numbers."""

from __future__ import annotations

import math
import os
import sys

import pytest

from bench import scale_bench
from bench.scale_data import SHARD_VIDEOS, build, input_path
from harmcache.store.cache import FeatureCache

N = 200
SMALL = 100


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """Every step at N videos, and `info` and `verify` at SMALL (for a growth exponent)."""
    root = tmp_path_factory.mktemp("scale")
    data = build(root / f"n{N}", N)
    small = build(root / f"n{SMALL}", SMALL)
    return {
        "data": data,
        "large": scale_bench.measure_size(data, scale_bench.STEPS),
        "small": scale_bench.measure_size(small, ("info", "verify")),
    }


@pytest.mark.slow
def test_every_step_runs_and_succeeds(measured):
    steps = measured["large"]["steps"]
    assert set(steps) == {*scale_bench.STEPS, scale_bench.MODELS_STEP}
    for name, step in steps.items():
        assert step["rc"] == 0 and not step["timed_out"], (name, step.get("stderr_tail"))
        assert step["wall_s"] > 0 and step["cpu_s"] > 0 and step["max_rss_mb"] > 0, name


@pytest.mark.slow
def test_the_command_line_takes_the_synthetic_cache_for_a_real_one(measured):
    steps = measured["large"]["steps"]
    assert steps["info"]["videos_reported"] == N
    assert steps["info"]["family_videos"] == N
    assert steps["info"]["family_shards"] == N // SHARD_VIDEOS
    assert steps["verify"]["consistent"] and steps["verify-sample"]["consistent"]
    assert steps["train-logreg"]["matched_videos"] == N
    assert steps["train-logreg"]["test_auroc"] > 0.6  # the planted signal is learnt


@pytest.mark.slow
def test_the_rerun_finds_every_input_cached_and_prints_a_summary(measured):
    extract = measured["large"]["steps"]["extract"]
    assert (extract["extracted"], extract["cached"], extract["failed"]) == (0, N, 0)
    assert extract["lines_printed"] < 10
    assert extract["rss_above_models_mb"] == pytest.approx(
        extract["max_rss_mb"] - measured["large"]["steps"][scale_bench.MODELS_STEP]["max_rss_mb"]
    )


@pytest.mark.slow
def test_compact_merges_the_small_shards(measured):
    large = measured["large"]
    assert large["cache"]["shards"] == N // SHARD_VIDEOS
    assert large["steps"]["compact"]["shards_merged"] == N // SHARD_VIDEOS
    assert large["cache_after"]["shards"] == 1
    assert large["cache"]["index_bytes_per_video"] > 0


@pytest.mark.slow
def test_the_memo_answers_for_every_input(measured):
    """An extract rerun reads no input: each one's stat matches the memo."""
    data = measured["data"]
    paths = [os.path.abspath(input_path(data.inputs, i)) for i in range(N)]
    with FeatureCache(data.cache) as cache:
        known = cache.known_identities(paths)
    for path in paths:
        st = os.stat(path)
        assert known[path][0] == (st.st_size, st.st_mtime_ns, st.st_ino)


@pytest.mark.slow
def test_growth_and_summary_come_from_the_measured_numbers(measured):
    small, large = measured["small"], measured["large"]
    result = scale_bench.report([small, large])
    assert list(result)[:2] == ["summary", "meta"]
    [row] = result["growth"]
    assert set(row["cpu"]) == {"info", "verify"}
    for name in row["cpu"]:
        a, b = small["steps"][name]["cpu_s"], large["steps"][name]["cpu_s"]
        assert row["cpu"][name] == round(math.log(b / a) / math.log(N / SMALL), 3)
    summary = result["summary"]
    assert summary["sizes"] == [SMALL, N] and summary["checked_at"] == N
    assert not summary["at_target_size"]
    targets = summary["targets"]
    assert targets["cache_info_cpu_s"]["value"] == large["steps"]["info"]["cpu_s"]
    assert targets["compact_s"]["value"] == large["steps"]["compact"]["wall_s"]
    assert targets["growth_exponent"]["value"] == max(row["cpu"].values())
    assert summary["all_pass"] == all(t["pass"] for t in targets.values())
    assert summary["rerun_cached"] == N


def test_a_failing_command_is_recorded_with_its_stderr(tmp_path):
    argv = [sys.executable, "-c", "import sys; sys.exit('broken on purpose')"]
    record = scale_bench.measure(
        argv, cwd=tmp_path, env=dict(os.environ), logs=tmp_path, name="fail", timeout_s=60
    )
    assert record["rc"] == 1 and not record["timed_out"]
    assert "broken on purpose" in record["stderr_tail"]


def test_a_command_past_its_timeout_is_killed_and_recorded(tmp_path):
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    record = scale_bench.measure(
        argv, cwd=tmp_path, env=dict(os.environ), logs=tmp_path, name="slow", timeout_s=0.5
    )
    assert record["timed_out"] and record["rc"] != 0
    assert record["wall_s"] < 30


def test_a_dependent_step_is_skipped_when_its_run_is_missing(tmp_path):
    data = build(tmp_path / "n16", 16)
    steps = scale_bench.measure_size(data, ("evaluate",))["steps"]
    assert steps == {"evaluate": {"skipped": "needs train-logreg, which did not run or failed"}}


def test_build_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="was not made by bench/scale_data.py"):
        build(tmp_path, 8)
    assert (tmp_path / "notes.txt").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "info,bogus"], "--steps takes names from"),
        (["--sizes", "10,x"], "--sizes takes comma-separated integers"),
        (["--sizes", "0"], "--sizes needs at least one video count above 0"),
    ],
)
def test_bad_options_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        scale_bench.parse_args(argv)
    assert message in capsys.readouterr().err
