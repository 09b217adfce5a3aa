import numpy as np
import pytest

from harmcache.errors import VideoError
from harmcache.video.decode import VideoSource, _DecordSource, _PyAVSource, shrink_short_side


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
    by_decord = _DecordSource(path).read(idx)
    by_pyav = _PyAVSource(path).read(idx)
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

    monkeypatch.setattr(_DecordSource, "__init__", refuse)
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
    real = _PyAVSource.frames
    monkeypatch.setattr(
        _PyAVSource,
        "frames",
        lambda self, chunk: calls.append(list(chunk.indices)) or real(self, chunk),
    )
    decoded = VideoSource(path).decode(np.array([2, 4]))
    np.testing.assert_array_equal(decoded.frames, frames[[2, 4]])
    assert calls == [[0, 2, 4, 5, 9]]
