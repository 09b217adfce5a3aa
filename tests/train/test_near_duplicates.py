"""Near-duplicate-aware splits on real encoded videos: a re-encoded, rescaled copy of a clip
lands on its original's side of the split, by default whenever the cache has a pdq family;
clusters whose labels disagree are reported."""

from __future__ import annotations

import csv

import pytest

from harmcache.errors import UsageError
from harmcache.store.cache import FeatureCache
from harmcache.train.fit import train
from harmcache.train.labels import match_labels, read_label_set
from harmcache.train.near_duplicates import GROUP_PREFIX, group_near_duplicates
from harmcache.train.rundir import load_run
from tests.known.media import reencoded, scene_video
from tests.running import ok, tiny_flags

SOURCES = 8


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """8 distinct 4-second clips and a re-encoded copy of each, hashed and CLIP-embedded."""
    root = tmp_path_factory.mktemp("near")
    videos = []
    for i in range(SOURCES):
        original = scene_video(root / "videos" / f"clip{i}.mp4", [10 * i + s for s in range(4)])
        videos += [original, reencoded(original, root / "videos" / f"copy{i}.mp4")]
    ok("extract", root / "videos", "--out", root / "cache", "--extractors", "clip,pdq",
       *tiny_flags())  # fmt: skip
    labels = root / "labels.csv"
    with open(labels, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "group"])
        for i in range(SOURCES):
            writer.writerow(
                [root / "videos" / f"clip{i}.mp4", i % 2, "uploader-a" if i == 0 else ""]
            )
            # The copy of clip 1 disagrees with its original.
            writer.writerow([root / "videos" / f"copy{i}.mp4", (i % 2) ^ (i == 1), ""])
    return root, labels


def test_each_copy_joins_its_original(copies):
    root, labels = copies
    cache = FeatureCache(root / "cache")
    label_set = read_label_set(labels)
    videos = match_labels(label_set.rows, cache).videos
    found = group_near_duplicates(cache, videos, None)
    assert found.clusters == SOURCES and found.videos == 2 * SOURCES
    by_path = {v.paths[0].rsplit("/", 1)[-1]: v for v in videos}
    for i in range(SOURCES):
        assert by_path[f"clip{i}.mp4"].group == by_path[f"copy{i}.mp4"].group
    # A cluster with one group keeps it (its side does not move); the others get the cluster's.
    assert by_path["copy0.mp4"].group == "uploader-a"
    assert by_path["clip3.mp4"].group.startswith(GROUP_PREFIX)
    assert len(found.disagreeing) == 1
    assert {by_path["clip1.mp4"].video_id} <= set(found.disagreeing[0])
    assert any("carry different labels" in line for line in found.lines())


def test_train_keeps_each_cluster_on_one_side_by_default(copies, tmp_path):
    root, labels = copies
    result = train(root / "cache", labels, "logreg", tmp_path / "run", val_fraction=0.3,
                   test_fraction=0.3)  # fmt: skip
    assert result.join.near_duplicates["clusters"] == SOURCES
    sides = {r["path"].rsplit("/", 1)[-1]: r["split"] for r in load_run(tmp_path / "run").split()}
    for i in range(SOURCES):
        assert sides[f"clip{i}.mp4"] == sides[f"copy{i}.mp4"], i
    off = train(root / "cache", labels, "logreg", tmp_path / "off", near_duplicates="off",
                val_fraction=0.3, test_fraction=0.3)  # fmt: skip
    assert off.join.near_duplicates["clusters"] == 0


def test_grouping_without_a_pdq_family_is_refused(copies, tmp_path):
    from tests.synthetic_cache import build

    syn = build(tmp_path, 12)
    assert group_near_duplicates(syn.cache, [], None).clusters == 0  # default: quietly off
    with pytest.raises(UsageError, match="--near-duplicates group needs a pdq family"):
        group_near_duplicates(syn.cache, [], "group")
