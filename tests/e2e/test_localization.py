"""Where the harm is, end to end: planted long videos (30-40 s, one 4-10 s harmful event in
each harmful one), encoded, extracted at --fps 1 through the CLI with random-init CLIP, the
videos deleted, then `train --head mil` and `evaluate --events --json` from the cache alone.
The Transformer's 8-segment timeline on the same videos is printed beside it (run with -s)."""

from __future__ import annotations

import json

import pytest
from harmcache.cli.main import app
from typer.testing import CliRunner

from harmcache.demo import make_long_demo_set

pytestmark = pytest.mark.slow


def cli(*args: str) -> dict:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1]) if "--json" in args else {}


@pytest.fixture(scope="module")
def long_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("long")
    labels, events = make_long_demo_set(
        root / "videos", n_harmful=10, n_safe=10, seconds=(30.0, 40.0), seed=1
    )
    cache = root / "cache"
    cli("extract", str(root / "videos"), "--out", str(cache), "--random-init",
        "--extractors", "clip", "--fps", "1")  # fmt: skip
    for video in (root / "videos").rglob("*.mp4"):
        video.unlink()  # stage two reads the cache alone
    return root, cache, labels, events


def test_mil_finds_harmful_videos_and_their_seconds(long_cache):
    root, cache, labels, events = long_cache
    mil, tf = root / "runs" / "mil", root / "runs" / "tf"
    common = ["--cache", str(cache), "--labels", str(labels), "--test-fraction", "0.3",
              "--val-fraction", "0.25"]  # fmt: skip
    cli("train", *common, "--head", "mil", "--out", str(mil), "--events", str(events))
    # --events on train: each epoch reports the validation timelines' per-second figures.
    history = json.loads((mil / "metrics.json").read_text())["history"]
    assert history and all(0 <= e["localization"]["segment_auroc"] <= 1 for e in history)
    assert all(e["localization"]["n_positive_seconds"] > 0 for e in history)
    got = cli("evaluate", str(mil), "--events", str(events), "--json")
    assert got["subset"] == "test" and got["localization"]["timeline"] == "snippets"
    assert got["localization"]["tuned_on"] is False
    assert got["n_positive_seconds"] > 0 and got["n_seconds"] >= 30 * got["n"]
    print(
        f"\nmil: video F1 {got['f1']:.3f}, per-second AP {got['segment_ap']:.3f} "
        f"AUROC {got['segment_auroc']:.3f} on {got['n']} test videos"
    )
    assert got["f1"] >= 0.95
    assert got["segment_ap"] >= 0.8

    cli("train", *common, "--head", "transformer", "--out", str(tf), "--split-from", str(mil))
    other = cli("evaluate", str(tf), "--events", str(events), "--json")
    assert other["localization"]["timeline"] == "8 segments"
    print(
        f"transformer (8-segment timeline): video F1 {other['f1']:.3f}, per-second AP "
        f"{other['segment_ap']:.3f} AUROC {other['segment_auroc']:.3f}"
    )
    # Eight segments of a 30-40 s video are 4-5 s each: coarser than the events.
    assert other["n_seconds"] == got["n_seconds"]
