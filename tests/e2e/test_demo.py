"""The whole pipeline on the demo data, for real: encoded videos, random-init backbones,
videos deleted after extraction, heads trained from the cache, predict re-extracting a new clip."""

from __future__ import annotations

import numpy as np
import pytest

from harmcache.demo import demo_frames
from harmcache.video.encode import write_video
from tests.running import last_json, tiny_flags
from tests.running import ok as cli

EXTRACT = tiny_flags(frames=4, workers=0)


@pytest.mark.slow
def test_demo_data_heads_reach_f1_095_from_the_cache_alone(tmp_path):
    videos, cache, runs = tmp_path / "videos", tmp_path / "cache", tmp_path / "runs"
    cli("demo-data", videos, "--n-safe", "8", "--seed", "1", "--n-long", "0")
    summary = last_json(cli("extract", videos, "--out", cache, "--json", *EXTRACT))
    assert (summary["extracted"], summary["failed"]) == (29, 0)
    for clip in videos.rglob("*.mp4"):
        clip.unlink()  # stage two must not need them

    labels = videos / "labels.csv"
    cli("train", "--cache", cache, "--labels", labels, "--head", "transformer",
        "--out", runs / "tf", "--val-fraction", "0.35")  # fmt: skip
    cli("train", "--cache", cache, "--labels", labels, "--head", "lightgbm",
        "--out", runs / "gbm", "--split-from", runs / "tf")  # fmt: skip
    for run in ("tf", "gbm"):
        cli("sweep-threshold", runs / run)
        metrics = last_json(cli("evaluate", runs / run, "--json"))
        assert metrics["subset"] == "test" and metrics["n_positive"] >= 1
        assert metrics["f1"] >= 0.95, (run, metrics)
        assert (runs / run / "reliability.png").exists() == (metrics["n_positive"] < metrics["n"])
    ranked = last_json(cli("compare", runs / "tf", runs / "gbm", "--json"))
    assert ranked["ranked_by"] == "test F1" and ranked["warnings"] == []

    # A clip the cache has never seen: predict extracts it with the run's own backbones.
    new = write_video(tmp_path / "new" / "fight.mp4",
                      demo_frames(True, np.random.default_rng(99), n_frames=20), fps=8)  # fmt: skip
    out = last_json(cli("predict", new, "--run", runs / "tf", "--cache", cache, "--json"))
    (pred,) = out["predictions"]
    assert pred["status"] == "scored" and pred["label"] == "harmful"
    assert pred["objective"] == "f1" and 0 <= pred["probability"] <= 1
    assert pred["timeline"][-1]["end"] == pytest.approx(pred["duration"])
