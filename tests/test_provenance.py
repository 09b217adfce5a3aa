"""Library versions travel with the shards, survive an index rebuild, and `train` warns when one
family's videos were made under different versions."""

from __future__ import annotations

import json
import logging

import h5py

import harmcache
from harmcache.provenance import library_versions
from harmcache.store import maintenance
from tests import synthetic_cache


def test_train_warns_when_a_familys_videos_come_from_different_versions(tmp_path, caplog):
    syn = synthetic_cache.build(tmp_path, n=40, shard_size=10)
    clip = syn.families["clip"]
    one_shard = sorted(syn.cache.family_dir(clip).glob("shard-*.h5"))[0]
    elsewhere = {**library_versions(), "torch": "0.0.1-elsewhere"}
    with h5py.File(one_shard, "r+") as f:  # a shard made on another machine
        f.attrs["versions"] = json.dumps(elsewhere)
    maintenance.reindex(syn.cache)
    made = syn.cache.versions(clip)
    assert sorted(m["videos"] for m in made) == [10, 30]
    assert {m["versions"]["torch"] for m in made} == {
        "0.0.1-elsewhere",
        library_versions()["torch"],
    }

    with caplog.at_level(logging.WARNING, logger="harmcache.train.features"):
        harmcache.train(syn.cache.root, syn.labels_csv, "logreg", tmp_path / "run")
    (warning,) = [r.getMessage() for r in caplog.records if "library version" in r.getMessage()]
    assert warning.startswith("clip features were made under 2 different library version sets")
    assert "torch 0.0.1-elsewhere / " in warning
    assert "yolo" not in warning and "slowfast" not in warning


def test_one_version_set_gives_no_warning(tmp_path, caplog):
    syn = synthetic_cache.build(tmp_path, n=40)
    with caplog.at_level(logging.WARNING, logger="harmcache.train.features"):
        harmcache.train(syn.cache.root, syn.labels_csv, "logreg", tmp_path / "run")
    assert not [r for r in caplog.records if "library version" in r.getMessage()]
