"""End to end through the CLI: real encoded videos, real (random-init) backbones, real shards."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from harmcache.store.cache import FeatureCache
from harmcache.video.encode import write_video
from tests.conftest import coded_frames
from tests.running import invoke as cli
from tests.running import last_json, tiny_flags

TINY = tiny_flags(workers=0)


def write_audio_only(path):
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 16000
        for _ in range(4):
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture
def hostile(tmp_path):
    """A folder holding every kind of input a real collection throws at us."""
    d = tmp_path / "in"
    good = write_video(d / "good.mp4", coded_frames(12), fps=8)
    (d / "zero.mp4").write_bytes(b"")
    (d / "random.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    (d / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (d / "text.mp4").write_text("this is a text file renamed to .mp4\n")
    write_audio_only(d / "audio_only.mp4")
    write_video(d / "one_frame.mp4", coded_frames(1, seed=1), fps=8)
    write_video(d / "tiny.mp4", coded_frames(6, 16, 16, seed=2), fps=8)
    shutil.copy(good, d / "good_copy.mp4")
    write_video(d / "a" / "same.mp4", coded_frames(8, seed=3), fps=8)
    write_video(d / "b" / "same.mp4", coded_frames(8, seed=4), fps=8)
    write_video(d / "폭력_영상.mp4", coded_frames(8, seed=5), fps=8)
    write_video(d / "vidéo é.mp4", coded_frames(8, seed=6), fps=8)
    # Still images: good ones in three formats, one PNG named .jpg, and broken ones.
    picture = coded_frames(1, 40, 56, seed=7)[0]
    for name in ("photo.jpg", "photo.webp", "png_named.jpg"):
        fmt = "PNG" if name == "png_named.jpg" else None
        Image.fromarray(picture).save(_mkdir(d / "images") / name, format=fmt)
    (d / "images" / "zero.png").write_bytes(b"")
    (d / "images" / "text.jpg").write_text("not a picture\n")
    jpeg = (d / "images" / "photo.jpg").read_bytes()
    (d / "images" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    return d


def _mkdir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path


EXPECTED = {
    "good.mp4": ("extracted", None),
    "zero.mp4": ("failed", "empty"),
    "random.mp4": ("failed", "unreadable"),
    "truncated.mp4": ("failed", None),
    "text.mp4": ("failed", "unreadable"),
    "audio_only.mp4": ("failed", "no_video_stream"),
    "one_frame.mp4": ("extracted", None),
    "tiny.mp4": ("extracted", None),
    "good_copy.mp4": ("cached", None),
    "a/same.mp4": ("extracted", None),
    "b/same.mp4": ("extracted", None),
    "폭력_영상.mp4": ("extracted", None),
    "vidéo é.mp4": ("extracted", None),
    "images/photo.jpg": ("extracted", None),
    "images/photo.webp": ("extracted", None),
    "images/png_named.jpg": ("extracted", None),
    "images/zero.png": ("failed", "empty"),
    "images/text.jpg": ("failed", "unreadable"),
    "images/truncated.jpg": ("failed", "decode_error"),
}


def run_hostile(way: str, hostile, out):
    """The hostile folder through one of the three engines a user can pick."""
    if way == "default":  # exactly the README's command: default --workers, engine and sizes
        exe = Path(sys.executable).with_name("harmcache")
        proc = subprocess.run(
            [str(exe), "extract", str(hostile), "--out", str(out), "--random-init", "--json"],
            capture_output=True,
            text=True,
            timeout=900,
        )
        return proc.returncode, proc.stdout, proc.stderr
    flags = TINY if way == "workers0" else [a for a in TINY if a not in ("--workers", "0")]
    extra = ["--engine", "ray"] if way == "ray" else []
    result = cli("extract", hostile, "--out", out, "--json", *flags, *extra)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("way", ["default", "workers0", "ray"])
def test_hostile_folder_every_input_accounted_for(hostile, tmp_path, way):
    if way == "ray":
        pytest.importorskip("ray")
    out = tmp_path / "cache"
    code, stdout, stderr = run_hostile(way, hostile, out)
    assert code == 0, stderr
    assert "Traceback" not in stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    by_name = {str(Path(r["path"]).relative_to(hostile)): r for r in summary["inputs"]}
    assert set(by_name) == set(EXPECTED)
    for name, (status, reason) in EXPECTED.items():
        assert by_name[name]["status"] == status, (name, by_name[name])
        if reason:
            assert by_name[name]["reason"] == reason, (name, by_name[name])
    assert by_name["good_copy.mp4"]["video_id"] == by_name["good.mp4"]["video_id"]
    assert by_name["a/same.mp4"]["video_id"] != by_name["b/same.mp4"]["video_id"]
    assert (summary["extracted"], summary["cached"], summary["failed"]) == (10, 1, 8)
    assert "failed 8" in stderr

    with FeatureCache(out) as cache:
        assert len(cache.families()) == 4  # the default set: three backbones and pdq
        for fam in cache.families():
            assert len(cache.committed(fam)) == 10
        family = {f.extractor: f for f in cache.families()}
        one = cache.load(family["clip"], [by_name["one_frame.mp4"]["video_id"]])
        assert next(iter(one.values())).record.features.shape[0] == 1
        # An image is one row for CLIP, YOLO and pdq, and no SlowFast window (not a failure).
        photo = by_name["images/photo.jpg"]["video_id"]
        rows = {ex: len(cache.load(f, [photo])[photo].record.features) for ex, f in family.items()}
        assert rows == {"clip": 1, "yolo": 1, "slowfast": 0, "pdq": 1}
        failed = cache.failed()
        assert len(failed) == 8
        assert all(Path(p).is_absolute() for p in failed)
    assert cli("cache", "verify", out).exit_code == 0
    if way == "workers0":
        strict = cli("extract", hostile, "--out", out, "--json", "--strict", *TINY)
        assert strict.exit_code == 1
        assert last_json(strict)["cached"] == 11


def test_rerun_skips_and_one_changed_extractor_reextracts_only_itself(make_video, tmp_path):
    for i in range(3):
        make_video(f"v/{i}.mp4", n_frames=10, seed=i)
    inputs, out = tmp_path / "v", tmp_path / "cache"
    args = ("extract", inputs, "--out", out, "--json", "--extractors", "clip,yolo", *TINY)
    assert last_json(cli(*args))["extracted"] == 3
    yolo_dir = next((out / "features").glob("yolo-*"))
    before = {p.name: p.stat().st_mtime_ns for p in yolo_dir.glob("shard-*.h5")}

    again = last_json(cli(*args))
    assert (again["extracted"], again["cached"]) == (0, 3)

    flipped = last_json(cli(*args, "--tta", "flip"))
    assert flipped["extracted"] == 3
    assert {p.name: p.stat().st_mtime_ns for p in yolo_dir.glob("shard-*.h5")} == before
    assert len(list((out / "features").glob("clip-*"))) == 2


@pytest.mark.parametrize(
    "args,code,message",
    [
        ((), 2, "no inputs given"),
        (("VIDEO", "--frames", "0"), 2, "--frames must be at least 1"),
        (("VIDEO", "--extractors", "clip,sound"), 2, "unknown extractor 'sound'"),
        (("VIDEO", "--yolo-imgsz", "50"), 2, "--yolo-imgsz must be a multiple of 32"),
        (("VIDEO", "--tta", "rotate"), 2, "--tta must be 'flip'"),
        (("VIDEO", "--device", "tpu"), 2, "--device must be auto, cpu or cuda"),
        (("VIDEO", "--out", "FILE/cache"), 2, "is not a folder"),
        (("VIDEO", "--weights-dir", "EMPTY"), 3, r"yolov8n\.pt is not in .*--weights-dir"),
        (("VIDEO", "--weights-dir", "EMPTY", "--random-init"), 2, "exclude each other"),
    ],
)
def test_unusable_invocations_give_one_line_errors(make_video, tmp_path, args, code, message):
    video, _ = make_video("v.mp4")
    (tmp_path / "FILE").write_text("x")
    (tmp_path / "EMPTY").mkdir()
    subst = {
        "VIDEO": str(video),
        "FILE/cache": str(tmp_path / "FILE" / "cache"),
        "EMPTY": str(tmp_path / "EMPTY"),
    }
    args = [subst.get(a, a) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "cache")]
    if "--random-init" not in args and "--weights-dir" not in args:
        args += ["--random-init"]
    result = cli("extract", *args)
    assert result.exit_code == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert __import__("re").search(message, lines[0])


def test_cache_commands_on_a_non_cache_folder_fail_cleanly(tmp_path):
    for sub in ("info", "verify", "gc"):
        result = cli("cache", sub, tmp_path)
        assert result.exit_code == 4
        assert (
            result.stderr.strip()
            == f"error: {tmp_path} is not a harmcache cache (no harmcache.json)"
        )


def test_cache_info_json_and_gc(make_video, tmp_path):
    make_video("v/a.mp4", seed=1)
    out = tmp_path / "cache"
    cli("extract", tmp_path / "v", "--out", out, "--extractors", "clip", *TINY)
    leftover = next((out / "features").glob("clip-*")) / ".shard-z.h5.tmp-9-abc"
    leftover.write_bytes(b"partial")
    info = last_json(cli("cache", "info", out, "--json"))
    assert [f["videos"] for f in info["families"]] == [1]
    noted = cli("cache", "verify", out)
    assert noted.exit_code == 0 and "1 uncommitted temporary file(s)" in noted.stdout
    dry = cli("cache", "gc", out, "--dry-run")
    assert "would remove" in dry.stdout and leftover.exists()
    assert "1 item(s) removed" in cli("cache", "gc", out).stdout
    assert not leftover.exists()
    assert cli("cache", "verify", out).exit_code == 0
