import numpy as np
import pytest

from harmcache.video.sampling import timestamps, uniform_indices, window_indices


@pytest.mark.parametrize("n,count", [(100, 32), (32, 32), (33, 32), (1000, 7)])
def test_uniform_indices_cover_the_whole_video(n, count):
    idx = uniform_indices(n, count)
    assert len(idx) == count
    assert np.all(np.diff(idx) > 0)
    assert idx[0] < n / count and idx[-1] >= n - n / count - 1


@pytest.mark.parametrize("n", [1, 5, 31])
def test_short_video_gives_all_its_frames(n):
    np.testing.assert_array_equal(uniform_indices(n, 32), np.arange(n))


def test_zero_frames_gives_nothing():
    assert uniform_indices(0, 32).size == 0


def test_windows_are_32_frames_at_stride_2_around_centres():
    w = window_indices(1000, 4)
    assert w.shape == (4, 32)
    assert np.all(np.diff(w, axis=1) == 2)
    centres = uniform_indices(1000, 4)
    np.testing.assert_array_equal(w[:, 16], centres)


def test_windows_clamp_to_short_videos():
    w = window_indices(10, 2)
    assert w.min() == 0 and w.max() == 9
    assert np.all(np.diff(w, axis=1) >= 0)


def test_timestamps_use_fps():
    np.testing.assert_allclose(timestamps(np.array([0, 8, 12]), 8.0), [0.0, 1.0, 1.5])
