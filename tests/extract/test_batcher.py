"""The shard batcher both engines share: which videos go in which shard, and when a video is
done. Pure bookkeeping, so tested without any cache or video."""

from __future__ import annotations

import pytest

from harmcache.extract.batcher import Shard, ShardBatcher


def test_a_shard_fills_per_family_in_the_order_videos_come():
    batcher = ShardBatcher(2)
    assert batcher.add("a", ["clip", "yolo"]) == []
    assert batcher.add("b", ["clip"]) == [Shard("clip", ("a", "b"))]
    assert batcher.add("c", ["yolo", "clip"]) == [Shard("yolo", ("a", "c"))]
    assert batcher.flush() == [Shard("clip", ("c",))]
    assert batcher.flush() == []


def test_a_video_is_done_when_its_last_shard_is_committed():
    batcher = ShardBatcher(2)
    batcher.add("a", ["clip", "yolo"])
    (clip,) = batcher.add("b", ["clip"])
    assert batcher.committed(clip) == ["b"]  # a still waits for its yolo shard
    (yolo,) = batcher.flush()
    assert yolo == Shard("yolo", ("a",))
    assert batcher.committed(yolo) == ["a"]


def test_a_video_with_no_family_never_waits():
    batcher = ShardBatcher(1)
    assert batcher.add("failed", []) == []
    assert batcher.flush() == [] and batcher.waiting == {}


def test_flush_goes_by_family_name():
    batcher = ShardBatcher(8)
    batcher.add("a", ["yolo", "clip", "slowfast"])
    assert [s.family for s in batcher.flush()] == ["clip", "slowfast", "yolo"]


def test_group_is_what_adding_one_by_one_gives():
    needs = [("a", ["clip", "yolo"]), ("b", ["clip"]), ("c", ["clip", "yolo"])]
    assert ShardBatcher.group(needs, 2) == [
        Shard("clip", ("a", "b")),
        Shard("yolo", ("a", "c")),  # full as c joins it
        Shard("clip", ("c",)),  # left open until the end
    ]
    assert ShardBatcher.group(iter(needs), 2) == ShardBatcher.group(needs, 2)


def test_a_shard_holds_at_least_one_video():
    with pytest.raises(ValueError, match="at least 1 video, got 0"):
        ShardBatcher(0)
