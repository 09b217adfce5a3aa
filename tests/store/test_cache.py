import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from harmcache.errors import CacheError
from harmcache.extractors.base import FeatureRecord
from harmcache.hashing import fingerprint
from harmcache.store.atomic import leftovers
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.store.maintenance import remove, stale, verify
from harmcache.store.shard import shard_name
from harmcache.types import VideoFeatures, VideoInfo

INFO = VideoInfo(10, 5.0, 2.0, 64, 32, "decord")


def spec(extractor="clip", seed=0, **options):
    return {
        "extractor": extractor,
        "version": "1",
        "weights": {"kind": "random-init", "seed": seed},
        "options": options,
    }


def item(vid: str, rows: int = 3, dim: int = 4, value: float = 1.0) -> VideoFeatures:
    feats = np.full((rows, dim), value, dtype=np.float32)
    record = FeatureRecord(
        feats, np.arange(rows), np.arange(rows) / 5.0, {"detections": np.zeros((2, 7), np.float32)}
    )
    return VideoFeatures(vid, INFO, f"/videos/{vid}.mp4", record)


def test_commit_then_load_round_trips(tmp_path):
    fam = Family.from_spec(spec())
    with FeatureCache(tmp_path / "c", create=True) as cache:
        cache.commit(fam, [item("a" * 64), item("b" * 64, rows=5)])
        loaded = cache.load(fam, ["b" * 64])
    got = loaded["b" * 64]
    assert got.record.features.shape == (5, 4)
    np.testing.assert_array_equal(got.record.extras["detections"], np.zeros((2, 7)))
    assert got.info == INFO and got.source_path == "/videos/" + "b" * 64 + ".mp4"


def test_shard_is_self_describing_for_plain_h5py(tmp_path):
    fam = Family.from_spec(spec(frames=8))
    with FeatureCache(tmp_path / "c", create=True) as cache:
        path = cache.commit(fam, [item("a" * 64)])
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "harmcache-shard"
        assert f.attrs["fingerprint"] == fam.fingerprint
        assert json.loads(f.attrs["spec"])["options"] == {"frames": 8}
        assert [v.decode() if isinstance(v, bytes) else v for v in f.attrs["video_ids"]] == [
            "a" * 64
        ]
        assert f.attrs["format_version"] == 2
        assert list(f["videos/video_id"].asstr()[()]) == ["a" * 64]
        assert f["features"].dtype == np.float32 and f["features"].shape == (3, 4)
        assert f["videos/fps"][0] == 5.0
    assert path.name == shard_name(["a" * 64])


def test_index_is_rebuilt_from_shards_alone(tmp_path):
    fam = Family.from_spec(spec())
    root = tmp_path / "c"
    with FeatureCache(root, create=True) as cache:
        cache.commit(fam, [item("a" * 64), item("b" * 64)])
        cache.commit(fam, [item("c" * 64)])
        cache.record_sources([("/x/a.mp4", "a" * 64)])
    (root / "index.sqlite").unlink()
    with FeatureCache(root) as cache:
        assert cache.committed(fam) == {"a" * 64, "b" * 64, "c" * 64}
        assert cache.sources() == {"/x/a.mp4": "a" * 64}
        assert [f.name for f in cache.families()] == [fam.name]


def test_shard_committed_behind_the_index_is_found(tmp_path):
    from harmcache.store.shard import write_shard

    fam = Family.from_spec(spec())
    root = tmp_path / "c"
    with FeatureCache(root, create=True) as cache:
        folder = cache.ensure_family(fam)
    write_shard(folder, fam, [item("d" * 64)])  # as a crashed run or another writer would
    with FeatureCache(root) as cache:
        assert cache.committed(fam) == {"d" * 64}


def test_changed_settings_make_a_new_family(tmp_path):
    a, b = Family.from_spec(spec(tta=None)), Family.from_spec(spec(tta="flip"))
    assert a.fingerprint != b.fingerprint and a.name != b.name
    assert Family.from_spec(spec("yolo")).name.startswith("yolo-")


def test_fingerprint_is_stable_across_processes_and_key_order():
    s = {"b": 1, "a": {"y": [1, 2], "x": None}}
    here = fingerprint(s)
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "from harmcache.hashing import fingerprint;"
            "print(fingerprint({'a': {'x': None, 'y': [1, 2]}, 'b': 1}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert here == other
    assert fingerprint({**s, "b": 2}) != here


def test_verify_is_clean_then_names_each_problem(tmp_path):
    fam = Family.from_spec(spec())
    root = tmp_path / "c"
    with FeatureCache(root, create=True) as cache:
        good = cache.commit(fam, [item("a" * 64)])
        bad = cache.commit(fam, [item("b" * 64)])
        assert verify(cache, {"clip": 4}) == []
        with h5py.File(bad, "r+") as f:
            f["features"][0, 0] = np.nan
        (good.parent / ".shard-x.h5.tmp-1-abc").write_bytes(b"partial")
        problems = verify(cache, {"clip": 4})
        assert len(problems) == 1 and "NaN or inf" in problems[0]
        assert [p.name for p in leftovers(cache.root)] == [".shard-x.h5.tmp-1-abc"]
        assert any("features are 4-d, expected 512" in p for p in verify(cache, {"clip": 512}))


def test_gc_removes_leftovers_old_versions_and_dropped_families(tmp_path):
    keep, old = Family.from_spec(spec()), Family.from_spec({**spec(), "version": "0"})
    root = tmp_path / "c"
    with FeatureCache(root, create=True) as cache:
        cache.commit(keep, [item("a" * 64)])
        cache.commit(old, [item("a" * 64)])
        leftover = cache.family_dir(keep) / ".shard-y.h5.tmp-2-def"
        leftover.write_bytes(b"")
        found = stale(cache, {"clip": "1"})
        assert set(found) == {cache.family_dir(old), leftover}
        remove(cache, found)
        assert [f.name for f in cache.families()] == [keep.name]
        assert cache.committed(keep) == {"a" * 64}
        assert stale(cache, {"clip": "1"}, drop=(keep.name,)) == [cache.family_dir(keep)]


def test_opening_a_folder_that_is_not_a_cache_is_an_error(tmp_path):
    with pytest.raises(CacheError, match="is not a harmcache cache"):
        FeatureCache(tmp_path)


def test_failure_ledger_survives_a_torn_line(tmp_path):
    root = tmp_path / "c"
    with FeatureCache(root, create=True) as cache:
        cache.record_failure("/v/a.mp4", None, "unreadable", "cannot open")
    with open(root / "failures.jsonl", "a") as f:
        f.write('{"path": "/v/b.mp4", "rea')  # a crash mid-write
    with FeatureCache(root) as cache:
        assert list(cache.failed()) == ["/v/a.mp4"]
        assert cache.info()["failure_reasons"] == {"unreadable": 1}


def test_verify_names_a_video_held_by_two_shards(tmp_path):
    fam = Family.from_spec(spec())
    with FeatureCache(tmp_path / "c", create=True) as cache:
        cache.commit(fam, [item("a" * 64)])
        cache.commit(fam, [item("a" * 64), item("b" * 64)])
        problems = verify(cache, {"clip": 4})
    assert len(problems) == 1 and "(duplicate)" in problems[0]
