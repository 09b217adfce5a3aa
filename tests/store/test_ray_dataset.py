"""`ReadPlan.ray_dataset` on a local Ray instance: the rows are the plan's local read."""

from __future__ import annotations

import numpy as np
import pytest

from harmcache.errors import CacheError
from tests import synthetic_cache

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_local():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")  # fmt: skip
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_dataset_rows_equal_the_local_read(tmp_path, ray_local):
    synth = synthetic_cache.build(tmp_path, n=30, variable_length=True, shard_size=8)
    clip = synth.families["clip"]
    wanted = synth.ids[3:27]
    plan = synth.cache.plan(clip, wanted)
    ds = plan.ray_dataset(slice_videos=5)
    assert len(plan.slices(5)) == 6  # the shards hold 3, 8, 5 and 8 of the videos asked for
    assert ds.materialize().num_blocks() >= 4  # one per shard slice (4 shards, slices of 5)
    rows = {row["video_id"]: row for row in ds.iter_rows()}
    loaded = synth.cache.load(clip, wanted, extras=False)
    assert sorted(rows) == sorted(wanted)
    for vid, video in loaded.items():
        row = rows[vid]
        assert np.array_equal(np.asarray(row["features"]), video.record.features)
        assert np.array_equal(np.asarray(row["timestamp"]), video.record.timestamp)
        assert np.array_equal(np.asarray(row["frame_index"]), video.record.frame_index)
        assert row["duration"] == video.info.duration


def test_a_plan_without_videos_makes_no_dataset(tmp_path):
    synth = synthetic_cache.build(tmp_path, n=4)
    with pytest.raises(CacheError, match="are not in family"):
        synth.cache.plan(synth.families["clip"], ["0" * 64])
    with pytest.raises(CacheError, match="holds no videos to make a dataset of"):
        synth.cache.plan(synth.families["clip"], []).ray_dataset()
