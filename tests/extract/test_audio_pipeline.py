"""Audio through the whole pipeline, run as users run it (the installed `harmcache` command):
hostile inputs, the planted-sound set (the sound alone tells the classes apart, so an
audio-only head must find it and a vision-only head must not), and the Ray engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harmcache.extract.jobs import VideoJob, plan_video
from harmcache.extractors.base import ExtractSettings, WeightsSource
from harmcache.store import maintenance
from harmcache.store.cache import FeatureCache
from harmcache.video.chunks import probe_indices
from harmcache.video.decode import VideoSource
from tests.video.test_audio import broken_sound_video, sound_video, tone

TINY = ["--random-init", "--frames", "2", "--batch-size", "4"]


def harmcache(*args, cwd: Path | None = None, ok: bool = True) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("harmcache")  # the installed console script
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    run = subprocess.run(
        [str(exe), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=500, env=env
    )
    if ok:
        assert run.returncode == 0, (args, run.stderr[-3000:])
    return run


def last_json(run: subprocess.CompletedProcess) -> dict:
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    """A good clip with sound, one without an audio track, one with a damaged sound track and a
    valid picture, and a file that is not a video."""
    folder = tmp_path_factory.mktemp("hostile")
    sound_video(folder / "good.mp4", np.stack([tone(2.0)] * 2))
    sound_video(folder / "mute.mp4", None)
    broken_sound_video(folder / "broken.mp4")
    (folder / "junk.mp4").write_bytes(np.random.default_rng(0).bytes(3000))
    return folder


@pytest.fixture(scope="module")
def hostile_run(hostile, tmp_path_factory) -> tuple[Path, dict]:
    cache = tmp_path_factory.mktemp("hostile-cache") / "cache"
    run = harmcache(
        "extract", hostile, "--out", cache, "--extractors", "clip,audio", "--json", *TINY
    )
    return cache, last_json(run)


def test_broken_sound_keeps_the_picture_and_fails_only_the_audio_family(hostile_run):
    cache, summary = hostile_run
    status = {Path(r["path"]).name: (r["status"], r["reason"]) for r in summary["inputs"]}
    assert status == {
        "good.mp4": ("extracted", None),
        "mute.mp4": ("extracted", None),  # no audio track is not a failure
        "broken.mp4": ("failed", "audio_error"),
        "junk.mp4": ("failed", "unreadable"),
    }
    with FeatureCache(cache) as store:
        families = {f.extractor: f for f in store.families()}
        ids = {Path(p).name: v for p, v in store.sources().items()}
        assert store.committed(families["clip"]) == {
            ids["good.mp4"],
            ids["mute.mp4"],
            ids["broken.mp4"],
        }
        assert store.committed(families["audio"]) == {ids["good.mp4"], ids["mute.mp4"]}
        (failure,) = [r for p, r in store.failed().items() if p.endswith("broken.mp4")]
        assert failure["family"] == families["audio"].name
        assert "could not be decoded" in failure["message"]
        audio = store.load(families["audio"])
        assert audio[ids["mute.mp4"]].record.features.shape == (0, 128)
        good = audio[ids["good.mp4"]].record
        assert good.features.shape == (2, 128)
        np.testing.assert_allclose(good.timestamp, [0.48, 1.44])
        assert maintenance.verify(store) == []


def test_cache_info_notes_the_videos_without_sound(hostile_run):
    cache, _ = hostile_run
    text = harmcache("cache", "info", cache).stdout
    assert "note: 1 video(s) have no audio track: zero rows, masked in stage two" in text
    assert "audio_error 1" in text
    report = last_json(harmcache("cache", "info", cache, "--json"))
    counts = {f["extractor"]: f.get("without_sound") for f in report["families"]}
    assert counts == {"audio": 1, "clip": None}


def test_a_rerun_retries_only_the_failed_audio(hostile, hostile_run, tmp_path):
    cache, _ = hostile_run
    again = last_json(
        harmcache("extract", hostile, "--out", cache, "--extractors", "clip,audio", "--json", *TINY)
    )
    status = {Path(r["path"]).name: (r["status"], r["reason"]) for r in again["inputs"]}
    assert status["good.mp4"] == status["mute.mp4"] == ("cached", None)
    assert status["broken.mp4"] == ("failed", "audio_error")


def test_an_audio_only_run_decodes_no_frame_beyond_the_probe(hostile):
    settings = ExtractSettings(weights=WeightsSource(random_init=True))
    source = VideoSource(hostile / "good.mp4")
    plan = plan_video(VideoJob(str(hostile / "good.mp4"), "x", (("audio", settings),)), source)
    decoded = np.concatenate([chunk.indices for chunk in plan.chunks])
    np.testing.assert_array_equal(decoded, probe_indices(source.info.n_frames))


@pytest.mark.slow
def test_planted_sound_audio_head_finds_it_and_vision_head_does_not(tmp_path):
    """30 clips per class, pictures drawn alike, a loud burst in the harmful ones' sound.

    Measured over split seeds 0-5 here: audio logreg F1 0.92-1.00 and AUROC 1.00 (and F1 0.89,
    AUROC 1.00, on a 21-clip test split drawn in one full run: three of fifteen harmful clips
    fell under the threshold validation chose, though every one outranked every safe clip), audio
    LightGBM F1 0.89-1.00 and AUROC 0.95-1.00; vision F1 0.30-0.76 and AUROC 0.32-0.69.
    The demo's H.264 bytes (so its video ids and split) vary between runs, so the bounds
    leave room for LightGBM, the noisier head on 36 training clips; logreg, the head the
    target is set for, keeps the strict bounds."""
    videos, cache, runs = tmp_path / "videos", tmp_path / "cache", tmp_path / "runs"
    harmcache("demo-data", videos, "--n-safe", "1", "--n-long", "0", "--n-audio", "30")
    labels = videos / "audio" / "labels.csv"
    # Default settings (one decode worker, batch 16) but random init and two CLIP frames.
    extract = ["--random-init", "--extractors", "clip,audio", "--frames", "2", "--json"]
    summary = last_json(harmcache("extract", videos / "audio", "--out", cache, *extract))
    assert (summary["extracted"], summary["failed"]) == (60, 0)
    first = runs / "audio-logreg"
    scores = {}
    for head in ("logreg", "lightgbm"):
        for features in ("audio", "clip"):
            out = runs / f"{features}-{head}"
            split = ["--val-fraction", "0.25", "--test-fraction", "0.4"]
            how = split if out == first else ["--split-from", first]
            train = ["--cache", cache, "--labels", labels, "--head", head, "--out", out]
            harmcache("train", *train, "--features", features, *how)
            scores[features, head] = last_json(harmcache("evaluate", out, "--json"))
    print({key: (round(s["f1"], 3), round(s["auroc"], 3), s["n"]) for key, s in scores.items()})
    test = scores["audio", "logreg"]
    assert test["subset"] == "test" and test["n"] >= 12 and test["n_positive"] >= 5
    # The pictures carry no signal: logreg ranks them about chance, far below the sound.
    assert scores["clip", "logreg"]["auroc"] <= 0.8, scores["clip", "logreg"]
    assert scores["clip", "logreg"]["f1"] <= 0.85, scores["clip", "logreg"]
    assert scores["audio", "logreg"]["auroc"] >= 0.95, scores["audio", "logreg"]
    # LightGBM on 36 training clips is noisier (on one split its picture-only ranking reached
    # AUROC 0.86 on 23 test clips): the sound must still rank better than the pictures.
    audio, clip = scores["audio", "lightgbm"], scores["clip", "lightgbm"]
    assert audio["auroc"] >= 0.8 and audio["auroc"] > clip["auroc"], (audio, clip)
    assert scores["audio", "logreg"]["f1"] >= 0.85, scores["audio", "logreg"]


@pytest.mark.slow
def test_ray_engine_gives_the_local_engines_audio_features(hostile, tmp_path):
    pytest.importorskip("ray")
    args = ["--extractors", "audio,clip", "--json", "--shard-size", "2", *TINY]
    harmcache("extract", hostile, "--out", tmp_path / "local", *args)
    remote = last_json(
        harmcache(
            "extract",
            os.path.relpath(hostile, tmp_path),
            "--out",
            "ray",
            "--engine",
            "ray",
            *args,
            cwd=tmp_path,
        )  # fmt: skip
    )
    assert {Path(r["path"]).name: r["reason"] for r in remote["inputs"]}["broken.mp4"] == (
        "audio_error"
    )
    with FeatureCache(tmp_path / "local") as a, FeatureCache(tmp_path / "ray") as b:
        assert [f.name for f in a.families()] == [f.name for f in b.families()]
        for family in a.families():
            local, ray = a.load(family), b.load(family)
            assert local.keys() == ray.keys()
            for vid, ref in local.items():
                for name in ("features", "frame_index", "timestamp"):
                    got = getattr(ray[vid].record, name)
                    assert np.array_equal(got, getattr(ref.record, name)), (family.name, name)
        (audio,) = [f for f in b.families() if f.extractor == "audio"]
        assert sorted(len(v.record.features) for v in b.load(audio).values()) == [0, 2]


def test_an_audio_only_set_leaves_out_videos_without_sound_and_predict_says_why(tmp_path):
    from harmcache.demo import make_audio_demo_set

    labels = make_audio_demo_set(tmp_path / "set", n_harmful=6, n_safe=6, seed=2)
    for name, frames in (("mute_a.mp4", 16), ("mute_b.mp4", 12)):  # different bytes
        sound_video(tmp_path / "set" / name, None, frames=frames)
    with open(labels, "a") as f:
        f.write("mute_a.mp4,1\nmute_b.mp4,0\n")
    cache, run = tmp_path / "cache", tmp_path / "run"
    harmcache("extract", tmp_path / "set", "--out", cache, "--extractors", "clip,audio", *TINY)
    common = ["--cache", cache, "--labels", labels, "--head", "logreg", "--features", "audio"]
    trained = harmcache("train", *common, "--out", run, "--val-fraction", "0.3")
    assert "dropped for having no rows in any chosen modality: 2" in trained.stdout + trained.stderr
    join = json.loads((run / "metrics.json").read_text())["join"]
    assert join["no_rows"] == 2 and join["matched_videos"] == 14
    split = (run / "split.csv").read_text()
    assert split.count("\n") == 1 + 12  # header + the videos with sound
    scored = harmcache("predict", tmp_path / "set" / "mute_a.mp4", labels.parent / "harmful" /
                       "sound_harmful_000.mp4", "--run", run, "--json")  # fmt: skip
    by_name = {Path(p["path"]).name: p for p in last_json(scored)["predictions"]}
    assert by_name["mute_a.mp4"]["status"] == "failed"
    assert by_name["mute_a.mp4"]["reason"] == "no_rows"
    assert by_name["sound_harmful_000.mp4"]["status"] == "scored"
    # With the picture too, the mute videos stay in: their audio is masked.
    both = harmcache("train", *common[:-1], "clip,audio", "--out", tmp_path / "both")
    join = json.loads((tmp_path / "both" / "metrics.json").read_text())["join"]
    assert join["no_rows"] == 0 and join["without_rows"] == {"audio": 2}
    assert "Traceback" not in both.stderr
