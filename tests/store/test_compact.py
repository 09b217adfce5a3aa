"""`cache compact`: small shards merged into big ones bit for bit, never across library
versions, safe to interrupt, and run as users run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harmcache.errors import UsageError
from harmcache.store.cache import FeatureCache
from harmcache.store.maintenance import compact, reindex, verify
from harmcache.store.rewrite import merge_shards
from harmcache.store.shard import read_header, write_shard
from tests.store.test_shard import assert_same, cache_with, family, video

SMALL = [[video(i) for i in range(k, k + 3)] for k in range(0, 30, 3)]  # ten shards of three
EVERY = [v for shard in SMALL for v in shard]


def shard_files(root: Path) -> list[Path]:
    return sorted(root.glob("features/*/shard-*.h5"))


def held_on_disk(root: Path) -> list[str]:
    """Every video id of every shard file, duplicates kept."""
    return [vid for path in shard_files(root) for vid in read_header(path).video_ids]


def check_everything_reads_back(cache: FeatureCache, *, consistent: bool = True) -> None:
    loaded = cache.load(family())
    assert sorted(loaded) == sorted(v.video_id for v in EVERY)
    for want in EVERY:
        assert_same(loaded[want.video_id], want)
    if consistent:
        assert verify(cache, {"yolo": 6}) == []


def test_small_shards_merge_bit_for_bit_in_both_layouts_and_a_rerun_does_nothing(tmp_path):
    root = tmp_path / "c"
    with cache_with(root, family(), SMALL, v1={1, 4, 7}) as cache:
        dry = compact(cache, shard_videos=12, dry_run=True)
        assert dry.merged == 10 and len(shard_files(root)) == 10
        report = compact(cache, shard_videos=12)
        # 12 videos a shard: 4 + 4 + 2 old shards (a run of one would be left alone)
        assert report.merged == 10 and len(report.written) == 3 and report.videos == 30
        assert len(shard_files(root)) == 3 and sorted(held_on_disk(root)) == sorted(
            v.video_id for v in EVERY
        )
        assert all(read_header(p).format_version == 2 for p in shard_files(root))
        check_everything_reads_back(cache)
        again = compact(cache, shard_videos=12)
        assert again.merged == 0 and len(shard_files(root)) == 3
    with FeatureCache(root) as reopened:  # the index on disk agrees
        check_everything_reads_back(reopened)
        reindex(reopened)
        check_everything_reads_back(reopened)


def test_shards_made_under_other_library_versions_are_never_merged_together(tmp_path):
    root = tmp_path / "c"
    with cache_with(root, family(), SMALL[:4]) as cache:
        folder = cache.family_dir(family())
        other = {"torch": "0.0-other"}
        for items in SMALL[4:6]:
            path = write_shard(folder, family(), items, versions=other)
            cache.index_shard(family(), path.name, items, versions=other)
        report = compact(cache)
        assert report.merged == 6 and len(report.written) == 2
        versions = sorted(
            (read_header(p).versions == other, len(read_header(p).video_ids))
            for p in shard_files(root)
        )
        assert versions == [(False, 12), (True, 6)]
        assert {m["videos"] for m in cache.versions(family())} == {12, 6}


def test_a_compaction_killed_between_commit_and_cleanup_loses_nothing(tmp_path):
    root = tmp_path / "c"
    with cache_with(root, family(), SMALL) as cache:
        folder = cache.family_dir(family())
        first = [folder / name for name in sorted(p.name for p in folder.glob("shard-*.h5"))[:4]]
        merge_shards(first, folder)  # committed, but the index was not repointed
    assert len(shard_files(root)) == 11 and len(held_on_disk(root)) == 42  # 12 held twice
    with FeatureCache(root) as cache:  # a later run finds the merged shard and indexes it
        check_everything_reads_back(cache, consistent=False)
        problems = verify(cache, {"yolo": 6})
        assert len(problems) == 12 and all("(duplicate)" in p for p in problems)
        compact(cache)
        assert sorted(held_on_disk(root)) == sorted(v.video_id for v in EVERY)  # once each
        check_everything_reads_back(cache)


def test_bad_target_is_refused():
    with pytest.raises(UsageError, match="^shard_videos must be at least 2, got 1$") as refused:
        compact(object(), shard_videos=1)  # type: ignore[arg-type]
    assert refused.value.as_flag() == "--shard-videos must be at least 2, got 1"


def test_the_command_with_its_defaults(tmp_path):
    root = tmp_path / "c"
    cache_with(root, family(), SMALL, v1={0}).close()
    harmcache = Path(sys.executable).with_name("harmcache")
    run = subprocess.run(
        [str(harmcache), "cache", "compact", str(root)],
        capture_output=True,
        text=True,
        env={**os.environ, "HARMCACHE_OFFLINE": "1"},
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "merged 10 shard(s) holding 30 video(s) into 1" in run.stdout
    assert "Traceback" not in run.stderr
    assert len(shard_files(root)) == 1
    with FeatureCache(root) as cache:
        check_everything_reads_back(cache)
    bad = subprocess.run(
        [str(harmcache), "cache", "compact", str(root), "--shard-videos", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "--shard-videos must be at least 2" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_train_suggests_compacting_a_cache_of_small_shards_and_trains_the_same_after(tmp_path):
    from harmcache.train.fit import train
    from tests import synthetic_cache

    synth = synthetic_cache.build(tmp_path, n=40, shard_size=1, dims={"clip": 8, "slowfast": 8})
    quiet = {"on_join": lambda report: None, "on_epoch": lambda report: None}
    before = train(synth.cache.root, synth.labels_csv, "logreg", tmp_path / "a", **quiet)
    assert any("cache compact" in note for note in before.notes)  # 80 shards of one video
    with FeatureCache(synth.cache.root) as cache:
        assert compact(cache).merged == 80
    after = train(synth.cache.root, synth.labels_csv, "logreg", tmp_path / "b", **quiet)
    assert not any("cache compact" in note for note in after.notes)
    assert after.metrics["test"] == before.metrics["test"]
