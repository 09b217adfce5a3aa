"""Long videos: time-dense sampling on the stream's own clock, and decoding and extracting in
bounded chunks with exactly the features of a whole-video decode."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest
from harmcache.cli.main import app
from typer.testing import CliRunner

import harmcache
from harmcache.errors import UsageError
from harmcache.extract import decode_ahead
from harmcache.extract.jobs import VideoJob, decode_chunks, decode_job, probe_job
from harmcache.extract.per_video import extract_item, extract_video
from harmcache.extract.pipeline import run_extraction
from harmcache.extract.progress import Progress
from harmcache.extract.respec import extractor_for_spec
from harmcache.extractors.base import ExtractSettings, WeightsSource, get_extractor
from harmcache.store.cache import FeatureCache
from harmcache.video.chunks import plan_chunks
from harmcache.video.decode import VideoSource
from harmcache.video.sampling import (
    fps_indices,
    tiled_window_indices,
    video_duration,
)
from harmcache.video.stream_index import StreamIndex
from tests.conftest import coded_frames

RANDOM = WeightsSource(random_init=True)
SMALL = dict(yolo_imgsz=64, slowfast_short_side=64, slowfast_crop=64, batch_size=4)


_MODELS: dict = {}


def loaded(name: str, settings: ExtractSettings):
    """An extractor with `settings`, sharing one seeded model per backbone across this module's
    tests (every settings here share SMALL's model sizes)."""
    extractor = get_extractor(name)(settings)
    if name not in _MODELS:
        extractor.load()
        _MODELS[name] = extractor.model
    extractor.model = _MODELS[name]
    return extractor


def write_timed(path, frames, pts, time_base, *, codec="libx264rgb", options=None):
    """Encode frames with the given presentation timestamps (a variable frame rate, or an odd
    time base). Lossless by default, so decoded frames equal `frames`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "rgb24" if codec == "libx264rgb" else "yuv420p"
        stream.time_base = stream.codec_context.time_base = time_base
        stream.options = options or {"crf": "0", "preset": "ultrafast"}
        for frame, stamp in zip(frames, pts):
            image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            image.pts, image.time_base = int(stamp), time_base
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def frame_ids(frames: np.ndarray) -> list[int]:
    """coded_frames writes 7 × index into the top-left pixel."""
    return (frames[:, 0, 0, 0] // 7).tolist()


# --- sampling -----------------------------------------------------------------------------
def test_fps_takes_the_frame_on_screen_at_each_segment_centre():
    times = np.arange(300) / 30.0  # 10 s at 30 fps
    idx = fps_indices(times, 2.0)
    assert len(idx) == 20
    np.testing.assert_array_equal(idx, np.floor((np.arange(20) + 0.5) / 2 * 30).astype(int))


@pytest.mark.parametrize("n,fps", [(1, 2.0), (5, 2.0), (301, 1.0), (300, 0.25)])
def test_fps_covers_the_whole_video_at_least_once(n, fps):
    times = np.arange(n) / 30.0
    idx = fps_indices(times, fps)
    assert len(idx) == max(1, int(np.ceil(video_duration(times) * fps - 1e-9)))
    assert np.all(np.diff(idx) >= 0) and idx[0] >= 0 and idx[-1] <= n - 1


def test_fps_follows_presentation_times_not_indices():
    # 1 s of 30 fps, a 3-s freeze (one frame), then 1 s of 30 fps.
    times = np.concatenate([np.arange(30) / 30, [1.0], 4.0 + np.arange(30) / 30])
    idx = fps_indices(times, 1.0)
    np.testing.assert_array_equal(idx, [15, 30, 30, 30, 46])


def test_window_tiling_every_s_seconds():
    times = np.arange(600) / 30.0  # 20 s
    windows = tiled_window_indices(times, 5.0)
    assert windows.shape == (4, 32)
    np.testing.assert_array_equal(windows[:, 16], [75, 225, 375, 525])
    np.testing.assert_array_equal(np.diff(windows, axis=1), 2)
    short = tiled_window_indices(np.arange(10) / 30.0, 5.0)
    assert short.shape == (1, 32) and short.min() == 0 and short.max() == 9


# --- settings, spec and fingerprints -----------------------------------------------------
EXCLUSIVE = [
    (dict(frames=8, fps=2.0), "--frames and --fps exclude each other: pass one"),
    (
        dict(windows=2, window_every=4.0),
        "--windows and --window-every exclude each other: pass one",
    ),
]


@pytest.mark.parametrize("kwargs,message", EXCLUSIVE)
def test_count_and_density_exclude_each_other_in_python(tmp_path, make_video, kwargs, message):
    video, _ = make_video("v.mp4")
    with pytest.raises(UsageError, match=f"^{message}$"):
        harmcache.extract([video], tmp_path / "cache", random_init=True, device="cpu", **kwargs)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--frames", "32", "--fps", "2"], EXCLUSIVE[0][1]),
        (["--windows", "4", "--window-every", "2"], EXCLUSIVE[1][1]),
        (["--fps", "0"], "--fps must be above 0, got 0"),
        (["--window-every", "-1"], "--window-every must be above 0 seconds, got -1"),
    ],
)
def test_count_and_density_exclude_each_other_on_the_command_line(
    tmp_path, make_video, args, message
):
    video, _ = make_video("v.mp4")
    result = CliRunner().invoke(
        app, ["extract", str(video), "--out", str(tmp_path / "c"), "--random-init", *args]
    )
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"error: {message}"]


def test_density_options_are_in_the_spec_and_rebuild_from_it():
    settings = ExtractSettings(fps=2, window_every=1.5, weights=RANDOM)
    specs = {n: get_extractor(n)(settings).spec() for n in ("clip", "yolo", "slowfast")}
    assert specs["clip"]["options"]["fps"] == 2.0 and "frames" not in specs["clip"]["options"]
    assert specs["yolo"]["options"]["sampling"] == "fps-pts"
    assert specs["slowfast"]["options"]["window_every"] == 1.5
    assert "windows" not in specs["slowfast"]["options"]
    default = {n: get_extractor(n)(ExtractSettings(weights=RANDOM)).spec() for n in specs}
    for name, spec in specs.items():
        assert (
            get_extractor(name)(settings).fingerprint
            != get_extractor(name)(ExtractSettings(weights=RANDOM)).fingerprint
        )
        rebuilt = extractor_for_spec(spec)
        assert rebuilt.spec() == spec
        assert extractor_for_spec(default[name]).spec() == default[name]
    # An int and a float density are one family.
    assert get_extractor("clip")(ExtractSettings(fps=2.0, weights=RANDOM)).spec() == specs["clip"]


# --- decoding ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vfr(tmp_path_factory):
    """A real variable-frame-rate file: gaps of 33 ms to 500 ms between frames."""
    frames = coded_frames(20)
    gaps = [33, 33, 100, 250, 33, 33, 500, 40, 40, 40, 40, 200, 33, 33, 33, 33, 33, 33, 33]
    pts = np.cumsum([0, *gaps])
    path = tmp_path_factory.mktemp("vfr") / "vfr.mkv"
    return write_timed(path, frames, pts, Fraction(1, 1000)), frames, pts / 1000


def test_timestamps_come_from_presentation_times(vfr):
    path, frames, seconds = vfr
    source = VideoSource(path)
    np.testing.assert_array_equal(source.times, seconds)
    assert source.info.fps == 30.0  # the stream's nominal rate: index / fps would be wrong
    decoded = source.decode(np.arange(20), chunk_frames=3)
    np.testing.assert_array_equal(decoded.frames, frames)


def test_fps_sampling_of_a_vfr_video_uses_its_clock_end_to_end(vfr):
    path, _, seconds = vfr
    settings = ExtractSettings(fps=4.0, weights=RANDOM, **SMALL)
    job = VideoJob(str(path), "v" * 64, (("yolo", settings),))
    record = extract_item(decode_job(job), loaded("yolo", settings)).record
    expected = fps_indices(seconds, 4.0)
    np.testing.assert_array_equal(record.frame_index, expected)
    np.testing.assert_array_equal(record.timestamp, seconds[expected])
    assert not np.array_equal(record.timestamp, expected / 30.0)


def test_an_odd_time_base_gives_exact_times(tmp_path):
    path = write_timed(
        tmp_path / "ntsc.mp4",
        coded_frames(40),
        np.arange(40) * 3003,
        Fraction(1, 90000),
        codec="libx264",
        options={"g": "6"},
    )
    source = VideoSource(path)
    exact = [float(Fraction(3003 * k, 90000)) for k in range(40)]
    np.testing.assert_array_equal(source.times, exact)


@pytest.fixture(scope="module")
def gop_video(tmp_path_factory):
    """Lossy H.264 with B-frames and a keyframe every 8 frames: chunks start by seeking."""
    frames = coded_frames(120, 48, 64, seed=5)
    path = tmp_path_factory.mktemp("gop") / "gop.mp4"
    return write_timed(
        path, frames, np.arange(120) * 512, Fraction(1, 12288), codec="libx264", options={"g": "8"}
    )


def test_chunks_are_whole_gops_holding_at_most_the_chunk_size():
    index = StreamIndex(np.arange(100.0), np.arange(0, 100, 10), np.arange(100))
    wanted = np.arange(0, 100, 3)
    chunks = plan_chunks(wanted, index, 5)
    assert max(len(c.indices) for c in chunks) <= 5
    np.testing.assert_array_equal(np.concatenate([c.indices for c in chunks]), wanted)
    assert all(c.start in index.keyframes and c.start <= c.indices[0] for c in chunks)
    assert [c.upto for c in chunks] == [int(c.indices[-1]) for c in chunks]
    # GOPs holding no wanted frame are never decoded.
    sparse = plan_chunks(np.array([5, 95]), index, 5)
    assert [c.start for c in sparse] == [0]
    assert [c.start for c in plan_chunks(np.array([5, 95]), index, 1)] == [0, 90]


def test_seeking_chunks_decode_exactly_what_one_pass_does(gop_video):
    source = VideoSource(gop_video)
    assert len(source.stream_index.keyframes) > 5
    wanted = np.unique(np.r_[np.arange(0, 120, 5), 57, 58, 119])
    whole = source.decode(wanted, chunk_frames=10_000)
    for size in (1, 4, 7):
        assert len(source.plan(wanted, size)) > 3
        np.testing.assert_array_equal(source.decode(wanted, chunk_frames=size).frames, whole.frames)


# --- streamed extraction -------------------------------------------------------------------
@pytest.mark.parametrize(
    "sampling",
    [dict(frames=9, windows=2), dict(fps=2.0, window_every=2.5)],
    ids=["count", "density"],
)
def test_streamed_features_equal_a_whole_video_decode_bit_for_bit(gop_video, sampling):
    settings = ExtractSettings(weights=RANDOM, **SMALL, **sampling)
    names = ("clip", "yolo", "slowfast")
    extractors = {n: loaded(n, settings) for n in names}
    whole = decode_job(VideoJob(str(gop_video), "v" * 64, tuple((n, settings) for n in names)))
    reference = {n: extract_item(whole, ex).record for n, ex in extractors.items()}

    tiny = ExtractSettings(weights=RANDOM, **SMALL, **sampling, chunk_frames=3)
    plan = probe_job(VideoJob(str(gop_video), "v" * 64, tuple((n, tiny) for n in names))).plan
    assert len(plan.chunks) > 4
    outcome = extract_video(plan, decode_chunks(plan), extractors)
    assert outcome.error is None and outcome.failures == {}
    assert list(outcome.features) == list(names)
    for name, item in outcome.features.items():
        ref = reference[name]
        np.testing.assert_array_equal(item.record.features, ref.features)
        np.testing.assert_array_equal(item.record.frame_index, ref.frame_index)
        np.testing.assert_array_equal(item.record.timestamp, ref.timestamp)
        assert item.record.extras.keys() == ref.extras.keys()
        for key in ref.extras:
            np.testing.assert_array_equal(item.record.extras[key], ref.extras[key])


def cache_contents(root) -> dict:
    out = {}
    with FeatureCache(root) as cache:
        for fam in cache.families():
            for vid, v in cache.load(fam).items():
                r = v.record
                out[(fam.extractor, vid)] = (r.features, r.frame_index, r.timestamp, r.extras)
    return out


def test_a_streamed_run_through_decode_workers_equals_an_inline_whole_video_run(
    gop_video, make_video, tmp_path, monkeypatch
):
    other, _ = make_video("v/other.mp4", n_frames=30, seed=3)
    inputs = [gop_video, other]
    sampling = dict(fps=2.0, window_every=2.5)
    handed = []
    real_claim = decode_ahead.claim

    def recording_claim(result):
        result = real_claim(result)
        handed.extend(len(v.frames) for v in result.decoded.values())
        return result

    monkeypatch.setattr(decode_ahead, "claim", recording_claim)
    runs = {}
    for name, chunk, workers in [("whole", 10_000, 0), ("streamed", 4, 1)]:
        settings = ExtractSettings(weights=RANDOM, **SMALL, **sampling, chunk_frames=chunk)
        extractors = [loaded(n, settings) for n in ("clip", "yolo", "slowfast")]
        summary = run_extraction(inputs, tmp_path / name, extractors, workers=workers)
        assert summary.count("extracted") == 2
        runs[name] = cache_contents(tmp_path / name)
    # Every frame array handed to the model process held at most one chunk.
    assert handed and max(handed) <= 4
    assert runs["whole"].keys() == runs["streamed"].keys()
    for key, (feats, idx, times, extras) in runs["whole"].items():
        got = runs["streamed"][key]
        np.testing.assert_array_equal(got[0], feats)
        np.testing.assert_array_equal(got[1], idx)
        np.testing.assert_array_equal(got[2], times)
        for k in extras:
            np.testing.assert_array_equal(got[3][k], extras[k])


def test_memory_is_bounded_by_the_batch_not_the_video(gop_video):
    settings = ExtractSettings(weights=RANDOM, **SMALL, fps=24.0, window_every=0.5, chunk_frames=8)
    names = ("yolo", "slowfast")
    plan = probe_job(VideoJob(str(gop_video), "v" * 64, tuple((n, settings) for n in names))).plan
    extractors = {n: loaded(n, settings) for n in names}
    sessions = {n: ex.session(plan.info, plan.times) for n, ex in extractors.items()}
    biggest = 0
    for chunk in decode_chunks(plan):
        for session in sessions.values():
            video = chunk.decoded[settings.decode_short_side]
            biggest = max(biggest, len(video.frames))
            session.feed(video, chunk.upto)
    assert biggest <= 8
    assert len(sessions["yolo"].rows) > 100
    # YOLO holds at most a batch of rows plus the chunk it was just fed.
    assert sessions["yolo"].peak_frames <= settings.batch_size + 8
    # A SlowFast batch (one window here) spans 64 frames, and the next windows overlap it.
    assert sessions["slowfast"].peak_frames <= 64 + 8
    for session in sessions.values():
        session.finish()
        assert session.buffer == {}


class Positions(Progress):
    def __init__(self):
        self.seen: list[tuple[str, float, float]] = []

    def position(self, path, seconds_done, seconds_total):
        self.seen.append((path, seconds_done, seconds_total))


def test_a_long_video_at_fps_through_the_command_with_default_workers(tmp_path):
    videos = tmp_path / "v"
    for i, seconds in enumerate((40, 6)):
        frames = coded_frames(8 * seconds, 32, 64, seed=i)
        write_timed(
            videos / f"{i}.mp4", frames, np.arange(len(frames)) * 128, Fraction(1, 1024),
            codec="libx264", options={"g": "16"},
        )  # fmt: skip
    out = tmp_path / "cache"
    args = ["extract", str(videos), "--out", str(out), "--random-init", "--fps", "1",
            "--window-every", "10", "--yolo-imgsz", "64", "--slowfast-crop", "64",
            "--device", "cpu", "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["extracted"] == 2
    with FeatureCache(out) as cache:
        rows = {}
        for fam in cache.families():
            for v in cache.load(fam).values():
                rows[(fam.extractor, v.info.n_frames)] = v.record
    assert rows[("clip", 320)].features.shape[0] == 40  # 40 s at 1 fps
    assert rows[("yolo", 48)].features.shape[0] == 6
    assert rows[("slowfast", 320)].features.shape[0] == 4  # 40 s in 10-s windows
    np.testing.assert_array_equal(rows[("clip", 320)].timestamp, np.arange(40) + 0.5)


def test_progress_shows_the_position_in_a_long_video(tmp_path):
    frames = coded_frames(200, 32, 64)
    path = write_timed(
        tmp_path / "v" / "long.mp4", frames, np.arange(200) * 128, Fraction(1, 1024),
        codec="libx264", options={"g": "16"},
    )  # fmt: skip
    progress = Positions()
    settings = ExtractSettings(weights=RANDOM, **SMALL, fps=2.0, chunk_frames=10)
    run_extraction([path], tmp_path / "cache", [loaded("yolo", settings)], progress=progress)
    assert len(progress.seen) >= 4
    assert {p for p, _, _ in progress.seen} == {str(path)}
    done = [d for _, d, _ in progress.seen]
    assert done == sorted(done) and progress.seen[-1][2] == pytest.approx(25.0)
