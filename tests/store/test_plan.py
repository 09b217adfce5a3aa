"""`FeatureCache.plan`: the read plan every read of the cache goes through. Its blocks are the
per-shard reads the cache always made, its videos and row counts those of the shards, its
slices and selections need no second index lookup, and the training loader plans through it
instead of working out the cache's shards itself."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest

from harmcache.errors import CacheError
from harmcache.store.cache import FeatureCache
from harmcache.store.index import Index
from harmcache.store.plan import ReadPlan
from harmcache.store.reader import read_block
from tests import REPO
from tests.store.test_shard import ALL, SHARDS, assert_same, cache_with, concat, family, same_bits

LOADER = REPO / "harmcache" / "train" / "loader.py"
WRITTEN = {v.video_id: v for v in ALL}
SOME = [ALL[7].video_id, ALL[1].video_id, ALL[3].video_id, ALL[8].video_id]
LAYOUTS = pytest.mark.parametrize("old", [set(), {1}, {0, 1, 2}], ids=["v2", "mixed", "v1"])
WANTED = pytest.mark.parametrize("wanted", [None, SOME], ids=["all", "some"])


def per_shard_reads(cache: FeatureCache, wanted: list[str] | None, **options) -> list:
    """The reads the cache made before it had plans: the index's shard of each video, then one
    `read_block` per shard in name order, of its videos in the order asked."""
    name = family().name
    entries = cache.index.entries(name)
    by_shard: dict[str, list[str]] = {}
    for vid in list(entries) if wanted is None else wanted:
        by_shard.setdefault(entries[vid], []).append(vid)
    folder = cache.family_dir(name)
    return [
        read_block(folder / shard, vids, family=name, **options)
        for shard, vids in sorted(by_shard.items())
    ]


def assert_same_block(got, want) -> None:
    assert (got.family, got.shard, got.video_ids) == (want.family, want.shard, want.video_ids)
    for key in ("offsets", "lengths", "features", "frame_index", "timestamp"):
        assert same_bits(getattr(got, key), getattr(want, key)), key
    assert got.info.keys() == want.info.keys()
    for key, column in want.info.items():
        assert got.info[key].tolist() == column.tolist(), key
    assert got.extras.keys() == want.extras.keys()
    for key, arrays in want.extras.items():
        assert all(same_bits(a, b) for a, b in zip(got.extras[key], arrays)), key


@LAYOUTS
@WANTED
@pytest.mark.parametrize("extras", [False, True])
def test_blocks_are_the_per_shard_reads_and_hold_the_written_rows(tmp_path, old, wanted, extras):
    with cache_with(tmp_path / "c", family(), SHARDS, v1=old) as cache:
        blocks = list(cache.plan(family(), wanted).blocks(extras=extras))
        want = per_shard_reads(cache, wanted, extras=extras)
    assert len(blocks) == len(want) and [b.shard for b in blocks] == sorted(b.shard for b in blocks)
    for block, reference in zip(blocks, want):
        assert_same_block(block, reference)
        items = [WRITTEN[vid] for vid in block.video_ids]
        for key in ("features", "frame_index", "timestamp"):
            got = getattr(block, key)
            assert same_bits(got, concat(items, key).astype(got.dtype)), key
        assert block.info["duration"].tolist() == [v.info.duration for v in items]
        assert bool(block.extras) == extras
    held = sorted(vid for block in blocks for vid in block.video_ids)
    assert held == sorted(WRITTEN if wanted is None else wanted)


def test_blocks_read_the_columns_asked_for_into_the_memory_given(tmp_path):
    made = []

    def alloc(shape, dtype):
        made.append(np.empty(shape, dtype))
        return made[-1]

    with cache_with(tmp_path / "c", family(), SHARDS) as cache:
        some = list(cache.plan(family(), SOME).blocks(info=("duration",), alloc=alloc))
        want = per_shard_reads(cache, SOME, info=("duration",))
        every = list(cache.plan(family()).blocks(info=(), alloc=alloc))  # one read per array
    assert all(list(block.info) == ["duration"] for block in some)
    for block, reference in zip(some, want):
        assert_same_block(block, reference)
    assert all(block.info == {} for block in every)
    assert all(any(a is block.features for a in made) for block in every)


@LAYOUTS
@pytest.mark.parametrize("extras", [False, True])
def test_videos_are_the_written_ones_in_the_order_asked(tmp_path, old, extras):
    with cache_with(tmp_path / "c", family(), SHARDS, v1=old) as cache:
        videos = cache.plan(family(), SOME).videos(extras=extras)
        every = cache.plan(family()).videos(extras=extras)
        loaded = cache.load(family(), SOME, extras=extras)
    assert [v.video_id for v in videos] == SOME == list(loaded)
    for video in videos:
        assert_same(video, WRITTEN[video.video_id], extras)
        assert_same(loaded[video.video_id], WRITTEN[video.video_id], extras)
    assert sorted(v.video_id for v in every) == sorted(WRITTEN)


@LAYOUTS
@WANTED
def test_row_counts_are_those_of_the_shards_video_tables(tmp_path, old, wanted):
    with cache_with(tmp_path / "c", family(), SHARDS, v1=old) as cache:
        plan = cache.plan(family(), wanted)
        counts = plan.row_counts()
        assert cache.row_counts(family(), wanted) == counts
    in_read_order = [vid for _, vids in plan.shards for vid in vids]
    assert list(counts) == in_read_order
    assert counts == {vid: len(WRITTEN[vid].record.features) for vid in in_read_order}


def test_slices_and_selections_need_no_second_lookup(tmp_path, monkeypatch):
    with cache_with(tmp_path / "c", family(), SHARDS) as cache:
        ids = [v.video_id for v in reversed(ALL)]
        plan = cache.plan(family(), ids)
        some = cache.plan(family(), SOME)
        for name in ("entries", "shards_of"):
            monkeypatch.setattr(Index, name, lambda *a, **k: pytest.fail("asked the index again"))
        parts = plan.slices(2)
        assert all(len(part) <= 2 and len(part.shards) == 1 for part in parts)
        assert [vid for part in parts for vid in part.video_ids] == [
            vid for _, vids in plan.shards for vid in vids
        ]
        assert len(parts) == sum(-(-len(vids) // 2) for _, vids in plan.shards) == 6
        chosen = plan.select(SOME)
        assert chosen.video_ids == SOME and chosen.shards == some.shards
        for a, b in zip(chosen.blocks(), some.blocks()):
            assert_same_block(a, b)
        with pytest.raises(CacheError, match=r"1 video\(s\) are not in family yolo-.*e\.g\. f+"):
            some.select([SOME[0], "f" * 64])


def test_the_loader_plans_its_reads_through_the_cache():
    """The loader used to look its videos up in the cache's index itself and pass the answer
    back into the reads (`iter_shards(where=, info=, alloc=)`); now each read is a plan's."""
    tree = ast.parse(LOADER.read_text(encoding="utf-8"))
    private = [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harmcache.store")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert private == []
    nodes = list(ast.walk(tree))
    reached = {node.attr for node in nodes if isinstance(node, ast.Attribute)}
    assert reached & {"index", "shards_of", "entries", "iter_shards"} == set()
    passed = {k.arg for node in nodes if isinstance(node, ast.Call) for k in node.keywords}
    assert "where" not in passed
    assert not hasattr(FeatureCache, "iter_shards")
    assert "where" not in inspect.signature(ReadPlan.blocks).parameters
