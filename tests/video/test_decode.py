import multiprocessing as mp
import pickle
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction

import av
import numpy as np
import pytest

from harmcache.errors import VideoError
from harmcache.extract.jobs import VideoJob, decode_job
from harmcache.extractors.base import ExtractSettings, WeightsSource
from harmcache.video.chunks import plan_chunks
from harmcache.video.decode import VideoSource, reopen
from harmcache.video.decoded import DecodedVideo, read_chunk
from harmcache.video.decord_source import DecordSource
from harmcache.video.pyav_source import PyAVSource
from harmcache.video.shrink import shrink_short_side
from harmcache.video.stream_index import StreamIndex
from tests.conftest import coded_frames


@pytest.mark.parametrize("codec,name", [("libx264rgb", "a.mp4"), ("ffv1", "a.mkv")])
def test_decoded_frames_equal_encoded_frames(make_video, codec, name):
    path, frames = make_video(name, n_frames=10, codec=codec)
    source = VideoSource(path)
    assert source.info.n_frames == 10
    assert (source.info.width, source.info.height) == (64, 32)
    assert source.info.fps == pytest.approx(8.0)
    idx = np.array([0, 3, 9])
    np.testing.assert_array_equal(source.read(idx), frames[idx])


def test_decord_and_pyav_agree_on_frame_indices(make_video):
    path, frames = make_video("b.mp4", n_frames=16)
    idx = np.array([0, 1, 7, 8, 15])
    with VideoSource(path, prefer="decord") as decord, VideoSource(path) as pyav:
        assert (decord._source.backend, pyav._source.backend) == ("decord", "pyav")
        by_decord, by_pyav = decord.read(idx), pyav.read(idx)
    np.testing.assert_array_equal(by_decord, frames[idx])
    np.testing.assert_array_equal(by_pyav, frames[idx])


def test_decode_takes_union_once_and_serves_any_order(make_video):
    path, frames = make_video("c.mp4", n_frames=12)
    decoded = VideoSource(path).decode(np.array([5, 1, 5, 9]))
    np.testing.assert_array_equal(decoded.indices, [1, 5, 9])
    np.testing.assert_array_equal(decoded.take(np.array([9, 1, 1])), frames[[9, 1, 1]])
    with pytest.raises(KeyError, match="frame plan missed"):
        decoded.take(np.array([2]))


@pytest.mark.parametrize(
    "content,reason",
    [
        (b"", "empty"),
        (b"hello, not a video\n" * 20, "unreadable"),
        (bytes(range(256)) * 40, "unreadable"),
    ],
)
def test_bad_files_raise_video_error_with_reason(tmp_path, content, reason):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError) as info:
        VideoSource(path)
    assert info.value.reason == reason


def test_missing_file_is_a_video_error(tmp_path):
    with pytest.raises(VideoError, match="missing: no such file"):
        VideoSource(tmp_path / "nope.mp4")


def test_pyav_fallback_reads_what_decord_rejects(make_video, monkeypatch):
    path, frames = make_video("d.mp4", n_frames=6)

    def refuse(self, path):
        raise RuntimeError("decord cannot open this")

    monkeypatch.setattr(DecordSource, "__init__", refuse)
    source = VideoSource(path)
    assert source.info.backend == "pyav"
    np.testing.assert_array_equal(source.read(np.array([0, 5])), frames[[0, 5]])


def test_shrink_short_side_bounds_memory_and_never_upscales():
    frames = np.zeros((2, 720, 1280, 3), dtype=np.uint8)
    assert shrink_short_side(frames, 360).shape == (2, 360, 640, 3)
    small = np.zeros((1, 16, 16, 3), dtype=np.uint8)
    assert shrink_short_side(small, 360).shape == small.shape


def test_width_decord_cannot_copy_falls_back_to_pyav(make_video):
    # decord's frame copy fails for widths that are not a multiple of 32; PyAV reads them.
    path, frames = make_video("odd.mp4", n_frames=6, size=(32, 48))
    source = VideoSource(path)
    assert source.info.backend == "pyav"
    np.testing.assert_array_equal(source.read(np.arange(6)), frames)


def test_pyav_path_decodes_the_video_once_probe_included(make_video, monkeypatch):
    # Sequential decoding reaches the last frame only by decoding all: the probe rides along.
    path, frames = make_video("seq.mp4", n_frames=10, size=(32, 48))
    calls = []
    real = PyAVSource.frames
    monkeypatch.setattr(
        PyAVSource,
        "frames",
        lambda self, chunk: calls.append(list(chunk.indices)) or real(self, chunk),
    )
    decoded = VideoSource(path).decode(np.array([2, 4]))
    np.testing.assert_array_equal(decoded.frames, frames[[2, 4]])
    assert calls == [[0, 2, 4, 5, 9]]


# --- one decode pass -------------------------------------------------------------------------
def write_bframes(path, frames, *, container_format=None, gop=16):
    """H.264 with three B-frames between references (the middle one a reference too) and a
    keyframe every `gop` frames."""
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream("libx264", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        params = f"bframes=3:b-adapt=0:b-pyramid=normal:keyint={gop}:min-keyint={gop}:scenecut=0"
        stream.options = {"crf": "20", "x264-params": params}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def every_frame(path) -> np.ndarray:
    """What decoding the whole video gives, frame by frame: the truth to match."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.fixture(scope="module")
def bframes(tmp_path_factory):
    path = write_bframes(tmp_path_factory.mktemp("b") / "b.mp4", coded_frames(96, 32, 48, seed=3))
    return path, every_frame(path)


WANTED = {
    "every frame": np.arange(96),
    "odd frames": np.arange(1, 96, 2),
    "even frames": np.arange(0, 96, 2),
    "sparse": np.array([3, 40, 41, 90]),
    "one per GOP": np.arange(5, 96, 16),
}


@pytest.mark.parametrize("wanted", WANTED.values(), ids=WANTED.keys())
@pytest.mark.parametrize("chunk_frames", [3, 128])
def test_one_pass_gives_exactly_the_frames_of_a_full_decode(bframes, wanted, chunk_frames):
    path, frames = bframes
    with VideoSource(path) as source:
        decoded = source.decode(wanted, chunk_frames=chunk_frames)
        np.testing.assert_array_equal(decoded.frames, frames[wanted])
        # The same source again, from the start: the pass starts over.
        np.testing.assert_array_equal(source.read(wanted[:2]), frames[wanted[:2]])


def test_frames_nobody_wants_or_refers_to_are_not_decoded(bframes):
    path, frames = bframes
    with VideoSource(path) as source:
        wanted = np.arange(0, 96, 2)  # every other frame: the B-frames between are dropped
        np.testing.assert_array_equal(source.decode(wanted).frames, frames[wanted])
        assert source._source._pass.count < 96


def test_a_stretch_nobody_wants_is_sought_over():
    index = StreamIndex(np.arange(100.0), np.arange(0, 100, 10), np.arange(100) * 2)
    (sparse,) = plan_chunks(np.array([5, 45, 46, 52, 95]), index, 128)
    assert sparse.start == 0 and sparse.seeks == ((1, 80), (4, 180))  # GOPs 40 and 90
    (dense,) = plan_chunks(np.arange(0, 100, 7), index, 128)
    assert dense.seeks == ()
    first, second = plan_chunks(np.array([5, 6, 95]), index, 2)
    assert first.seeks == () and second.seeks == ((0, 180),)


def test_a_container_that_cannot_seek_exactly_is_read_through(tmp_path):
    # MPEG-TS seeks land past the keyframe; decoding falls back to reading from the start.
    path = write_bframes(
        tmp_path / "b.ts", coded_frames(96, 32, 48, seed=4), container_format="mpegts"
    )
    frames = every_frame(path)
    wanted = np.array([2, 50, 51, 93])
    with VideoSource(path) as source:
        source._source._pass.held = None  # read the file, as a decode worker does
        np.testing.assert_array_equal(source.decode(wanted, chunk_frames=1).frames, frames[wanted])


def test_decode_job_opens_the_file_once(bframes, monkeypatch):
    path, frames = bframes
    opened = []
    real = av.open
    monkeypatch.setattr(av, "open", lambda *a, **k: opened.append(a[0]) or real(*a, **k))
    settings = ExtractSettings(weights=WeightsSource(random_init=True), chunk_frames=8)
    result = decode_job(VideoJob(str(path), "v" * 64, (("clip", settings),)))
    assert result.error is None and len(opened) == 1
    (video,) = result.decoded.values()
    np.testing.assert_array_equal(video.frames, frames[video.indices])


def decode_in_worker(path, info, chunk) -> DecodedVideo:
    """What a decode worker does with a chunk job: reopen the video, decode the chunk."""
    source = reopen(path, info)
    try:
        return read_chunk(source, info, chunk, {None: chunk.indices})[None]
    finally:
        source.close()


def test_the_stream_index_and_plans_travel_to_spawned_workers(bframes):
    path, frames = bframes
    wanted = np.arange(0, 96, 5)
    with VideoSource(path) as source:
        index = pickle.loads(pickle.dumps(source.stream_index))
        for name in ("times", "keyframes", "pts"):
            np.testing.assert_array_equal(getattr(index, name), getattr(source.stream_index, name))
        chunks, info = source.plan(wanted, 8), source.info
    assert len(chunks) > 1
    assert pickle.loads(pickle.dumps(chunks))[1].seeks == chunks[1].seeks
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        n = len(chunks)
        got = list(pool.map(decode_in_worker, [str(path)] * n, [info] * n, chunks))
    for chunk, video in zip(chunks, got, strict=True):
        assert isinstance(video, DecodedVideo)
        np.testing.assert_array_equal(video.indices, chunk.indices)
        np.testing.assert_array_equal(video.frames, frames[chunk.indices])
