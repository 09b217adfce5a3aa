"""Stage two reads each thing once: the index is asked once per family where the labelled videos
are, symlinks are resolved only for labels that did not match exactly, and each shard is read
once for the content guards and pooling together."""

from __future__ import annotations

import os

import pytest

from harmcache.heads.base import make_head
from harmcache.store import plan
from harmcache.store.index import Index
from harmcache.store.maintenance import reindex
from harmcache.train.inputs import Inputs, join_videos
from harmcache.train.labels import join_labels, read_labels
from harmcache.train.split import Split
from tests.synthetic_cache import build
from tests.train.test_labels import write_csv


@pytest.fixture
def syn(tmp_path):
    return build(tmp_path, 40, shard_size=8)


def _count(monkeypatch, cls, name):
    calls = []
    original = getattr(cls, name)

    def counted(self, *args, **kwargs):
        calls.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, counted)
    return calls


def test_exact_paths_never_resolve_symlinks(syn, tmp_path, monkeypatch):
    labels = write_csv(tmp_path / "l.csv", list(zip(syn.paths, syn.labels)))

    def no_realpath(path, *args, **kwargs):
        raise AssertionError(f"realpath({path!r}) for a label that matched exactly")

    monkeypatch.setattr(os.path, "realpath", no_realpath)
    videos, report = join_labels(read_labels(labels), syn.cache)
    assert report.matched_videos == 40 and len(videos) == 40


def test_a_symlinked_label_still_matches(syn, tmp_path):
    link = tmp_path / "linked"
    link.symlink_to(os.path.dirname(syn.paths[0]))
    key = str(link / os.path.basename(syn.paths[0]))
    labels = write_csv(tmp_path / "l.csv", [(key, 1), (syn.paths[1], 0)])
    videos, _ = join_labels(read_labels(labels), syn.cache)
    assert {v.video_id for v in videos} == {syn.ids[0], syn.ids[1]}


def test_the_index_is_asked_once_per_family(syn, monkeypatch):
    lookups = _count(monkeypatch, Index, "shards_of")
    whole = _count(monkeypatch, Index, "entries")
    joined = join_videos(syn.cache, syn.labels_csv, None, None, None)
    assert len(lookups) == len(syn.cache.families())
    assert sorted(joined.families) == sorted(syn.families)
    assert not whole  # no family's whole set of videos is built


def test_each_shard_is_read_once_for_guards_and_pooling(syn, monkeypatch):
    joined = join_videos(syn.cache, syn.labels_csv, None, None, None)
    split = Split.make(joined.videos, seed=0)
    head = make_head("logreg")
    reads = []
    original = plan.read_block
    monkeypatch.setattr(
        plan, "read_block", lambda path, *a, **k: reads.append(path) or original(path, *a, **k)
    )
    inputs = Inputs.load(syn.cache, joined, split, head, leave_out=True)
    inputs.fit_head(None)
    scores = inputs.scores("test")
    shards = sum(len({*joined.holdings.held(f).values()}) for f in joined.families.values())
    # The content guards, pooling, fitting and scoring: one read of each shard's features.
    assert len(reads) == len(set(reads)) == shards
    assert len(scores) == len(inputs.ids["test"])


def test_rows_are_checked_only_in_shards_that_have_rowless_videos(tmp_path, monkeypatch):
    """Each shard records how many of its videos have no rows, and the index keeps it: the
    completeness check opens the video tables of those shards alone (and of older shards that
    did not say), never every shard of every family."""
    every = ["clip", "yolo", "slowfast"]
    syn = build(tmp_path, 40, shard_size=8, empty={ex: [3] for ex in every})
    opened = []
    original = plan.row_counts
    monkeypatch.setattr(plan, "row_counts", lambda path: opened.append(path) or original(path))
    joined = join_videos(syn.cache, syn.labels_csv, None, None, None)
    assert joined.report.no_rows == 1  # video 3 has rows in no family
    assert len(joined.videos) == 39
    assert len(opened) == 3 and len({p.parent for p in opened}) == 3  # its shard, per family

    # An index rebuilt from the shards knows the same.
    reindex(syn.cache)
    opened.clear()
    assert join_videos(syn.cache, syn.labels_csv, None, None, None).report.no_rows == 1
    assert len(opened) == 3
    # A shard that does not say (written before shards said) is opened.
    clip = syn.families["clip"].name
    syn.cache.index.db.execute(
        "UPDATE shards SET rowless = NULL WHERE family = (SELECT id FROM families WHERE name = ?)",
        (clip,),
    )
    opened.clear()
    assert join_videos(syn.cache, syn.labels_csv, None, None, None).report.no_rows == 1
    assert len(opened) == 40 // 8 + 2
