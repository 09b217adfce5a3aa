"""Real uploads through the README's `extract` command: phone videos, cuts, VFR, non-square
pixels, 7.1 sound, old containers, odd names, a dangling link and pictures of every kind
(tests/media_corpus.py), with the default settings and on Ray; then the decoded pictures
compared with what ffmpeg shows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harmcache.store.cache import FeatureCache
from harmcache.video.decode import VideoSource
from harmcache.video.display import Display
from tests.cli.test_extract import TINY
from tests.media_corpus import (
    build_corpus,
    decode_only,
    exif_jpeg,
    ffmpeg,
    need_ffmpeg,
    upright_picture,
)

HARMCACHE = Path(sys.executable).with_name("harmcache")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("uploads") / "in"
    return root, build_corpus(root)


def _extract(corpus_root: Path, out: Path, *flags: str) -> tuple[int, str, str]:
    proc = subprocess.run(
        [str(HARMCACHE), "extract", str(corpus_root), "--out", str(out), "--json", *flags],
        capture_output=True,
        timeout=1500,
    )
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode(errors="replace")


@pytest.fixture(scope="module")
def default_run(corpus, tmp_path_factory):
    """The README's command with every default (workers, engine, frames, sizes, extractors)."""
    root, _ = corpus
    out = tmp_path_factory.mktemp("default") / "cache"
    return out, *_extract(root, out, "--random-init")


def _by_name(summary: dict, root: Path) -> dict[str, dict]:
    return {
        os.fsdecode(os.path.relpath(os.fsencode(r["path"]), os.fsencode(root))): r
        for r in summary["inputs"]
    }


def _check_accounted(corpus, code, stdout, stderr) -> dict[str, dict]:
    root, expected = corpus
    assert code == 0, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    got = _by_name(summary, root)
    assert set(got) == set(expected), set(got) ^ set(expected)
    for name, want in expected.items():
        row = got[name]
        assert row["status"] == want.status, (name, row)
        if want.reason:
            assert row["reason"] == want.reason, (name, row)
    return got


@pytest.mark.slow
def test_default_extract_accounts_for_every_upload(corpus, default_run):
    out, code, stdout, stderr = default_run
    got = _check_accounted(corpus, code, stdout, stderr)
    assert "notes.txt" not in " ".join(got)  # text beside the videos is not an input
    with FeatureCache(out) as cache:
        assert {f.extractor for f in cache.families()} == {"yolo", "clip", "slowfast", "pdq"}
        clip = next(f for f in cache.families() if f.extractor == "clip")
        wanted = {name: row["video_id"] for name, row in got.items() if row["status"] != "failed"}
        loaded = cache.load(clip, sorted(set(wanted.values())))
    root, expected = corpus
    for name, vid in wanted.items():
        info = loaded[vid].info
        if expected[name].display is not None:
            assert info.display == expected[name].display, name
        if expected[name].kind == "video" and not expected[name].display:
            assert info.display == "upright", (name, info)
    # The cache stores what a viewer sees: portrait phone videos are taller than wide.
    for name in ("phone/rot90.mp4", "phone/rot270.mp4", "phone/IMG_90.MOV"):
        info = loaded[wanted[name]].info
        assert (info.width, info.height) == (64, 96), (name, info)
    assert loaded[wanted["edits/pal_16x15.mp4"]].info.width == 192  # 180 x 16/15


@pytest.mark.slow
def test_durations_match_the_container(corpus, default_run):
    out, code, stdout, stderr = default_run
    got = _check_accounted(corpus, code, stdout, stderr)
    root, expected = corpus
    videos = {n: r["video_id"] for n, r in got.items() if expected[n].kind == "video"}
    videos = {n: v for n, v in videos.items() if got[n]["status"] == "extracted"}
    with FeatureCache(out) as cache:
        clip = next(f for f in cache.families() if f.extractor == "clip")
        loaded = cache.load(clip, sorted(set(videos.values())))
    for name, vid in videos.items():
        info = loaded[vid].info
        container = _container_duration(root / name)
        frame = 1.0 / info.fps if info.fps > 0 else 0.1
        assert abs(info.duration - container) <= frame + 1e-6, (name, info.duration, container)
    gap = loaded[videos["edits/vfr_gap.mp4"]].info
    assert gap.duration == pytest.approx(4.0, abs=0.04)  # not frames / average rate (2.53 s)
    cut = loaded[videos["edits/cut.mp4"]].info
    assert cut.n_frames == _decodable_frames(root / "edits/cut.mp4") == 75  # 4 s - 1.5 s at 30


@pytest.mark.slow
def test_ray_engine_accounts_for_every_upload_with_sound(corpus, tmp_path):
    pytest.importorskip("ray")
    root, _ = corpus
    tiny = [a for a in TINY if a not in ("--workers", "0")]  # Ray has its own workers
    code, stdout, stderr = _extract(
        root,
        tmp_path / "cache",
        "--engine",
        "ray",
        "--extractors",
        "yolo,clip,slowfast,audio",
        *tiny,
    )
    got = _check_accounted(corpus, code, stdout, stderr)
    with FeatureCache(tmp_path / "cache") as cache:
        audio = next(f for f in cache.families() if f.extractor == "audio")
        for name in ("sound/aac71.mp4", "sound/pcm71.mov", "sound/opus71.mkv"):
            vid = got[name]["video_id"]
            assert len(cache.load(audio, [vid])[vid].record.features) >= 1, name


def _container_duration(path: Path) -> float:
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        capture_output=True,
        check=True,
    )
    return float(json.loads(proc.stdout)["format"]["duration"])


def _decodable_frames(path: Path) -> int:
    proc = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        check=True,
    )
    return int(json.loads(proc.stdout)["streams"][0]["nb_read_frames"])


def ffmpeg_frames(path: Path, indices: list[int], vf: str | None = None) -> np.ndarray:
    """The frames at `indices` as ffmpeg shows them (auto-rotated), RGB, through lossless PNG."""
    from PIL import Image

    select = "select=" + "+".join(f"eq(n\\,{i})" for i in indices)
    chain = ",".join(filter(None, [select, vf]))
    folder = path.parent / f".frames-{path.name}"
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    ffmpeg("-i", path, "-vf", chain, "-fps_mode", "passthrough", folder / "%03d.png")
    pictures = sorted(folder.glob("*.png"))
    assert len(pictures) == len(indices), pictures
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in pictures])


def _variants(frame: np.ndarray) -> list[np.ndarray]:
    """The frame under each of the eight turns and mirrors."""
    out = []
    for turns in range(4):
        turned = np.rot90(frame, turns)
        out += [turned, turned[:, ::-1]]
    return out


ROTATED = [
    "phone/rot90.mp4",
    "phone/rot270.mp4",
    "phone/IMG_90.MOV",
    "decode-only/rot180.mp4",
    "decode-only/IMG_270.MOV",
]


def _file(root: Path, name: str) -> Path:
    folder, _, rest = name.partition("/")
    return decode_only(root) / rest if folder == "decode-only" else root / name


@pytest.mark.parametrize("backend", ["pyav", "decord"])
@pytest.mark.parametrize("name", ROTATED)
def test_rotated_frames_equal_what_ffmpeg_shows(corpus, name, backend):
    root, _ = corpus
    path = _file(root, name)
    with VideoSource(path, prefer=backend) as source:
        if source._source.backend != backend:
            pytest.fail(f"{backend} did not open {name}")
        indices = [0, source.info.n_frames // 2, source.info.n_frames - 1]
        ours = source.read(np.array(indices)).astype(np.int16)
    theirs = ffmpeg_frames(path, indices).astype(np.int16)
    assert ours.shape == theirs.shape
    error = np.abs(ours - theirs).mean()
    # The decoders' rounding: the same frames as each library converts them, against ffmpeg's
    # (10-bit HEVC is converted to RGB a few levels apart by different FFmpeg versions).
    floor = np.abs(_library_frames(path, indices, backend) - theirs).mean()
    assert error <= floor + 0.5, (error, floor)
    wrong = [
        np.abs(v - theirs[0]).mean() for v in _variants(ours[0])[1:] if v.shape == theirs[0].shape
    ]
    assert all(error < w / 4 for w in wrong), (error, wrong)


def _library_frames(path: Path, indices: list[int], backend: str) -> np.ndarray:
    """The frames as the library alone gives them: PyAV's coded frames turned the way ffmpeg
    turned them, or decord's (which turns by the display rotation itself)."""
    if backend == "decord":
        import decord

        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        return reader.get_batch(indices).asnumpy().astype(np.int16)
    import av

    with av.open(str(path)) as container:
        frames = [f for i, f in enumerate(container.decode(video=0)) if i in indices]
        coded = [f.to_ndarray(format="rgb24") for f in frames]
        turns = round(frames[0].rotation / 90) % 4  # counter-clockwise, as np.rot90 turns
    return np.stack([np.rot90(c, turns) for c in coded]).astype(np.int16)


@pytest.mark.parametrize("name", ["edits/pal_16x15.mp4", "decode-only/pal_64x45.mp4"])
def test_non_square_pixels_are_resampled_like_a_player(corpus, name):
    root, _ = corpus
    path = _file(root, name)
    with VideoSource(path) as source:
        ours = source.read(np.array([0, 10])).astype(np.int16)
    theirs = ffmpeg_frames(path, [0, 10], "scale=iw*sar:ih").astype(np.int16)
    assert ours.shape == theirs.shape
    assert np.abs(ours - theirs).mean() < 4.0  # area/bilinear here, bicubic in ffmpeg


def test_edit_list_cut_decodes_every_frame(corpus):
    root, _ = corpus
    path = root / "edits/cut.mp4"
    with VideoSource(path) as source:
        n = source.info.n_frames
        ours = source.read(np.array([0, n // 2, n - 1])).astype(np.int16)
    assert n == _decodable_frames(path)
    theirs = ffmpeg_frames(path, [0, n // 2, n - 1]).astype(np.int16)
    assert np.abs(ours - theirs).mean() <= 0.5


@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8])
@pytest.mark.parametrize("ext", [".jpg", ".jfif", ".jpe", ".bin"])
def test_exif_orientation_whatever_the_extension(tmp_path, orientation, ext):
    picture = upright_picture()
    path = tmp_path / f"photo{ext}"
    path.write_bytes(exif_jpeg(picture, orientation))
    with VideoSource(path) as source:
        ours = source.read(np.array([0]))[0].astype(np.int16)
    assert ours.shape == picture.shape
    assert np.abs(ours - picture).mean() < 4.0  # JPEG's loss, not a turn


def test_display_matrix_flips_and_turns(tmp_path):
    """Every turn and mirror a display matrix can hold, written by PyAV, decodes upright."""
    need_ffmpeg()

    base = tmp_path / "base.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=96x64:rate=12:duration=0.5",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        base,
    )
    with VideoSource(base) as source:
        coded = source.read(np.array([0]))[0]
    for turns in range(4):
        for hflip in (False, True):
            want = Display(turns, hflip)
            path = tmp_path / f"t{turns}{int(hflip)}.mp4"
            _remux_with_matrix(base, path, _matrix(turns, hflip))
            with VideoSource(path) as source:
                assert source.info.display == want.label
                got = source.read(np.array([0]))[0]
            np.testing.assert_array_equal(got, want.apply(coded))


def _matrix(turns: int, hflip: bool) -> list[int]:
    """FFmpeg's display matrix for `turns` clockwise quarter turns then a mirror."""
    one = 1 << 16
    # x' = a x + c y, y' = b x + d y for a point of the coded frame (y down).
    a, b, c, d = {0: (1, 0, 0, 1), 1: (0, 1, -1, 0), 2: (-1, 0, 0, -1), 3: (0, -1, 1, 0)}[turns]
    if hflip:
        a, c = -a, -c
    return [a * one, b * one, 0, c * one, d * one, 0, 0, 0, 1 << 30]


def _remux_with_matrix(src: Path, dst: Path, matrix: list[int]) -> None:
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        stream.set_display_matrix(matrix)
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)
