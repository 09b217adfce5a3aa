"""The snippet grid: frame rows averaged exactly inside each snippet, the nearest SlowFast window
within reach, masks where nothing covers a snippet, and agreement with a row-by-row loop."""

from __future__ import annotations

import numpy as np
import pytest

from harmcache.errors import UsageError
from harmcache.heads.data import Modality, SequenceData
from harmcache.heads.grid import snippet_grid


def modality(rows: list[list[tuple[float, list[float]]]], dim: int) -> Modality:
    """Per video, (timestamp, values) rows, padded."""
    n, length = len(rows), max((len(r) for r in rows), default=0)
    values = np.zeros((n, length, dim), dtype=np.float32)
    mask = np.zeros((n, length), dtype=bool)
    stamp = np.zeros((n, length))
    for i, video in enumerate(rows):
        for j, (t, v) in enumerate(video):
            values[i, j], mask[i, j], stamp[i, j] = v, True, t
    return Modality(values, mask, stamp, np.zeros((n, length), dtype=np.float32))


def test_frames_are_averaged_and_windows_taken_by_nearest_centre():
    clip = modality([[(0.1, [1, 2]), (0.6, [3, 5]), (1.2, [7, 11]), (3.4, [13, 17])]], 2)
    slowfast = modality([[(1.0, [100]), (3.0, [300])]], 1)
    data = SequenceData(["a"], {"clip": clip, "slowfast": slowfast}, None, np.array([3.5]))
    grid = snippet_grid(data)
    np.testing.assert_array_equal(grid.start, [[0, 1, 2, 3]])
    np.testing.assert_array_equal(grid.end, [[1, 2, 3, 3.5]])
    c = grid.data.modalities["clip"]
    np.testing.assert_array_equal(c.values[0], [[2, 3.5], [7, 11], [0, 0], [13, 17]])
    np.testing.assert_array_equal(c.mask[0], [True, True, False, True])
    np.testing.assert_array_equal(c.timestamp[0], [0.5, 1.5, 2.5, 3.25])
    np.testing.assert_allclose(c.position[0], np.array([0.5, 1.5, 2.5, 3.25]) / 3.5)
    # Centres 0.5, 1.5 → the window at 1.0; 2.5, 3.25 → 3.0; reach = half the spacing = 1.0.
    s = grid.data.modalities["slowfast"]
    np.testing.assert_array_equal(s.values[0, :, 0], [100, 100, 300, 300])
    assert s.mask.all() and grid.mask.all() and grid.inside.all()


def test_window_reach_masks_far_snippets_and_ties_take_the_earlier_window():
    slowfast = modality([[(2.0, [20]), (1.0, [10])]], 1)  # rows need not be in time order
    data = SequenceData(["a"], {"slowfast": slowfast}, None, np.array([4.0]))
    s = snippet_grid(data).data.modalities["slowfast"]
    # Spacing 1 → reach 0.5: centre 1.5 is a tie (10 wins); 3.5 is 1.5 from 2.0: uncovered.
    np.testing.assert_array_equal(s.values[0, :, 0], [10, 10, 20, 0])
    np.testing.assert_array_equal(s.mask[0], [True, True, True, False])
    narrow = snippet_grid(data, window_reach=0.25).data.modalities["slowfast"]
    np.testing.assert_array_equal(narrow.mask[0], [False, False, False, False])
    wide = snippet_grid(data, window_reach=10).data.modalities["slowfast"]
    np.testing.assert_array_equal(wide.values[0, :, 0], [10, 10, 20, 20])
    one = SequenceData(["b"], {"slowfast": modality([[(5.0, [1])]], 1)}, None, np.array([60.0]))
    assert snippet_grid(one).data.modalities["slowfast"].mask.all()  # one window covers all


def test_padding_lengths_and_masks():
    clip = modality([[(0.5, [1]), (5.5, [2])], [(0.2, [3]), (99.0, [4])]], 1)
    clip.mask[1, 1] = False  # a padded row with a timestamp and a value is ignored
    data = SequenceData(["a", "b"], {"clip": clip}, None, np.array([6.0, 2.5]))
    grid = snippet_grid(data, 2.0)
    np.testing.assert_array_equal(grid.n_snippets, [3, 2])
    np.testing.assert_array_equal(grid.inside, [[True, True, True], [True, True, False]])
    np.testing.assert_array_equal(grid.end, [[2, 4, 6], [2, 2.5, 0]])
    np.testing.assert_array_equal(grid.mask, [[True, False, True], [True, False, False]])
    np.testing.assert_array_equal(
        grid.data.modalities["clip"].values[:, :, 0], [[1, 0, 2], [3, 0, 0]]
    )
    part = grid.subset([1])
    assert part.start.shape == (1, 2) and part.data.video_ids == ["b"]
    np.testing.assert_array_equal(part.mask, [[True, False]])


def test_rows_at_or_past_the_end_go_to_the_last_snippet_and_unknown_durations():
    clip = modality([[(2.0, [1]), (2.7, [3])], [(0.0, [5]), (3.0, [7])]], 1)
    data = SequenceData(["a", "b"], {"clip": clip}, None, np.array([2.0, 0.0]))
    grid = snippet_grid(data)
    # a: 2 s long, so its rows at 2.0 and 2.7 land in [1, 2); b: unknown, runs to [3, 4).
    np.testing.assert_array_equal(grid.n_snippets, [2, 4])
    np.testing.assert_array_equal(grid.data.modalities["clip"].values[0, :2, 0], [0, 2])
    np.testing.assert_array_equal(grid.end[1], [1, 2, 3, 4])
    np.testing.assert_array_equal(grid.data.modalities["clip"].values[1, :, 0], [5, 0, 0, 7])
    np.testing.assert_array_equal(grid.data.duration, [2.0, 4.0])


def brute_force(m: Modality, duration: np.ndarray, seconds: float, window: bool):
    n_snip = np.maximum(np.ceil(duration / seconds - 1e-9), 1).astype(int)
    length = n_snip.max()
    values = np.zeros((len(duration), length, m.dim))
    mask = np.zeros((len(duration), length), dtype=bool)
    for i in range(len(duration)):
        rows = [(m.timestamp[i, j], m.values[i, j]) for j in range(m.mask.shape[1]) if m.mask[i, j]]
        for k in range(n_snip[i]):
            lo, hi = k * seconds, min((k + 1) * seconds, duration[i])
            if window:
                if not rows:
                    continue
                stamps = sorted(t for t, _ in rows)
                reach = np.median(np.diff(stamps)) / 2 if len(stamps) > 1 else np.inf
                centre = (lo + hi) / 2
                best = min(rows, key=lambda r: (abs(r[0] - centre), r[0]))
                if abs(best[0] - centre) <= reach + 1e-9:
                    values[i, k], mask[i, k] = best[1], True
            else:
                last = k == n_snip[i] - 1
                inside = [
                    v for t, v in rows if (t >= lo or k == 0) and (t < (k + 1) * seconds or last)
                ]
                if inside:
                    values[i, k] = np.mean(np.array(inside, dtype=np.float64), axis=0)
                    mask[i, k] = True
    return values, mask


@pytest.mark.parametrize("seconds", [1.0, 0.5, 2.5])
def test_agrees_with_a_row_by_row_loop(seconds):
    rng = np.random.default_rng(int(seconds * 10))
    n = 70  # more than one chunk of videos
    duration = rng.uniform(3, 20, n)
    rows = []
    for d in duration:
        t = rng.uniform(0, d, rng.integers(0, 30))  # unsorted, some videos with no rows
        rows.append([(float(x), list(rng.normal(size=3))) for x in t])
    m = modality(rows, 3)
    data = SequenceData([str(i) for i in range(n)], {"clip": m, "slowfast": m}, None, duration)
    grid = snippet_grid(data, seconds)
    for name, window in (("clip", False), ("slowfast", True)):
        values, mask = brute_force(m, duration, seconds, window)
        got = grid.data.modalities[name]
        np.testing.assert_array_equal(got.mask, mask)
        np.testing.assert_allclose(got.values, values.astype(np.float32), rtol=1e-6, atol=1e-6)


def test_an_hour_long_video_is_gridded():
    hours = 3600.0
    t = np.arange(0.25, hours, 0.5)
    m = Modality(
        np.ones((2, len(t), 4), dtype=np.float32),
        np.ones((2, len(t)), dtype=bool),
        np.tile(t, (2, 1)),
        np.zeros((2, len(t)), dtype=np.float32),
    )
    grid = snippet_grid(SequenceData(["a", "b"], {"clip": m}, None, np.array([hours, hours])))
    assert grid.mask.shape == (2, 3600) and grid.mask.all()
    np.testing.assert_array_equal(grid.data.modalities["clip"].values, 1.0)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"snippet_seconds": 0}, r"snippet_seconds must be a positive number, got 0"),
        ({"snippet_seconds": float("nan")}, r"snippet_seconds must be a positive number, got nan"),
        ({"window_reach": -1.0}, r"window_reach must be at least 0 seconds, got -1.0"),
    ],
)
def test_bad_settings(settings, message):
    data = SequenceData(["a"], {"clip": modality([[(0.5, [1])]], 1)}, None, np.array([1.0]))
    with pytest.raises(UsageError, match=message):
        snippet_grid(data, **settings)
