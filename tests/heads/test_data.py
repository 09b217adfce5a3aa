"""A video's duration as stage two sees it has one rule, `stage_two_duration`: the recorded one,
else one second past the last row; the snippet grid's variant ends at the last row's snippet.
The cache reader, the streaming loader and the grid all take it from there."""

from __future__ import annotations

import numpy as np
import pytest

from harmcache.extractors.base import FeatureRecord
from harmcache.heads.data import Modality, SequenceData, stage_two_duration
from harmcache.heads.grid import snippet_grid
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.train.features import load_sequences
from harmcache.train.loader import StreamingLoader
from harmcache.types import VideoFeatures, VideoInfo
from tests.synthetic_cache import spec, video_id


@pytest.mark.parametrize(
    "recorded, last, expected",
    [
        (7.5, 3.2, 7.5),  # recorded: kept
        (0.0, 3.2, 4.2),  # unknown: one second past the last row
        (-1.0, 3.2, 4.2),
        (np.nan, 3.2, 4.2),
        (0.0, 0.0, 1.0),  # no rows at all: one second
    ],
)
def test_the_rule(recorded, last, expected):
    assert float(stage_two_duration(recorded, last)) == pytest.approx(expected, abs=1e-12)


def test_vectorised_and_the_snippet_variant():
    recorded = np.array([7.5, 0.0, 0.0, 0.0])
    last = np.array([3.2, 2.5, 3.0, 0.0])
    np.testing.assert_array_equal(stage_two_duration(recorded, last), [7.5, 3.5, 4.0, 1.0])
    # On a grid of 1 s snippets an unknown duration ends with the last row's snippet.
    snippets = stage_two_duration(recorded, last, snippet_seconds=1.0)
    np.testing.assert_array_equal(snippets, [7.5, 3.0, 4.0, 1.0])
    np.testing.assert_array_equal(
        stage_two_duration(recorded, last, snippet_seconds=2.0), [7.5, 4.0, 4.0, 2.0]
    )


@pytest.fixture
def cache(tmp_path):
    """Three cached videos: a recorded duration, an unknown one, and an unknown one with no rows."""
    cache = FeatureCache(tmp_path / "cache", create=True)
    family = Family.from_spec(spec("clip"))
    items = []
    for i, (duration, stamps) in enumerate([(7.5, [0.5, 3.2]), (0.0, [0.5, 2.5]), (0.0, [])]):
        rows = len(stamps)
        record = FeatureRecord(
            np.ones((rows, 4), np.float32), np.arange(rows, dtype=np.int64), np.array(stamps)
        )
        info = VideoInfo(100, 25.0, duration, 64, 32, "synthetic")
        items.append(VideoFeatures(video_id(f"d{i}"), info, f"/videos/d{i}.mp4", record))
    cache.commit(family, items)
    return cache, {"clip": family}, [item.video_id for item in items]


def test_the_cache_reader_and_the_streaming_loader_agree(cache):
    cache, families, ids = cache
    labels = np.array([1, 0, 1])
    data = load_sequences(cache, families, ids, labels)
    np.testing.assert_array_equal(data.duration, [7.5, 3.5, 1.0])
    stream = StreamingLoader(cache, families, ids, labels, batch_size=2)
    streamed = {v: d for part in stream.epoch(0) for v, d in zip(part.video_ids, part.duration)}
    assert streamed == dict(zip(ids, data.duration.tolist()))


def test_the_grid_takes_the_snippet_variant_for_unknown_durations():
    stamps = np.array([[0.5, 3.2], [0.5, 2.5], [0.0, 0.0]])
    mask = np.array([[True, True], [True, True], [False, False]])
    rows = Modality(np.ones((3, 2, 4), np.float32), mask, stamps, np.zeros((3, 2), np.float32))
    data = SequenceData(["a", "b", "c"], {"clip": rows}, None, np.array([7.5, 0.0, 0.0]))
    grid = snippet_grid(data, 1.0)
    np.testing.assert_array_equal(grid.data.duration, [7.5, 3.0, 1.0])
    np.testing.assert_array_equal(grid.n_snippets, [8, 3, 1])
