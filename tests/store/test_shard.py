"""The columnar shard layout (format_version 2): bit-exact round trips, whole-shard blocks, reading
a few videos by their slices alone, old group-per-video shards, `cache migrate` and `verify`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from harmcache.errors import CacheError
from harmcache.hashing import canonical_json
from harmcache.provenance import library_versions
from harmcache.store import block as block_mod
from harmcache.store import rewrite
from harmcache.store.atomic import leftovers, publish, temporary_name
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.store.lock import CacheLock
from harmcache.store.maintenance import migrate, verify
from harmcache.store.shard import read_header, shard_name, write_shard
from harmcache.types import FeatureRecord, VideoFeatures, VideoInfo
from tests import REPO

_STR = h5py.string_dtype("utf-8")


def family(extractor: str = "yolo") -> Family:
    return Family.from_spec(
        {
            "extractor": extractor,
            "version": "1",
            "weights": {"kind": "random-init", "seed": 0},
            "options": {},
        }
    )


def video(i: int, rows: int | None = None, dim: int = 6, detections: int | None = None):
    """A video with seeded random rows (some videos hold none) and detections of varied count."""
    rng = np.random.default_rng(i)
    rows = int(rng.integers(0, 7)) if rows is None else rows
    n_det = int(rng.integers(0, 4)) if detections is None else detections
    record = FeatureRecord(
        rng.standard_normal((rows, dim), dtype=np.float32),
        rng.integers(0, 1000, rows).astype(np.int64),
        rng.random(rows) * 30.0,
        {
            "detections": rng.random((n_det, 7)).astype(np.float32),
            "window_frames": rng.integers(0, 99, (rows, 32)).astype(np.int64),
        },
    )
    info = VideoInfo(100 + i, 25.0 + i / 7, 4.0 + i / 3, 640 + i, 360, ("decord", "pyav")[i % 2])
    return VideoFeatures(f"{i:064x}", info, f"/videos/ü/{i}.mp4", record)


def write_v1_shard(folder: Path, fam: Family, items: list[VideoFeatures]) -> Path:
    """The writer of format_version 1 (one group per video), as it was."""
    ids = [item.video_id for item in items]
    final = folder / shard_name(ids)
    tmp = temporary_name(final)
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = "harmcache-shard"
        f.attrs["format_version"] = 1
        f.attrs["family"] = fam.name
        f.attrs["extractor"] = fam.extractor
        f.attrs["fingerprint"] = fam.fingerprint
        f.attrs["spec"] = canonical_json(fam.spec)
        f.attrs["random_init"] = fam.random_init
        f.attrs.create("video_ids", np.array(ids, dtype=object), dtype=_STR)
        backends = [item.info.backend for item in items]
        f.attrs.create("backends", np.array(backends, dtype=object), dtype=_STR)
        f.attrs["versions"] = canonical_json(library_versions())
        for item in items:
            group = f.create_group(item.video_id)
            group.attrs["source_path"] = item.source_path
            for key, value in item.info.to_dict().items():
                group.attrs[key] = value
            record = item.record
            group.create_dataset("features", data=record.features)
            group.create_dataset("frame_index", data=record.frame_index)
            group.create_dataset("timestamp", data=record.timestamp)
            for key, value in record.extras.items():
                group.create_dataset(key, data=value)
        f.flush()
    publish(tmp, final)
    return final


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def assert_same(got: VideoFeatures, want: VideoFeatures, extras: bool = True) -> None:
    assert got.video_id == want.video_id
    assert got.info == want.info and got.source_path == want.source_path
    for key in ("features", "frame_index", "timestamp"):
        assert same_bits(getattr(got.record, key), getattr(want.record, key)), key
    if extras:
        assert got.record.extras.keys() == want.record.extras.keys()
        for key, value in want.record.extras.items():
            assert same_bits(got.record.extras[key], value), key
    else:
        assert got.record.extras == {}


def concat(items: list[VideoFeatures], key: str) -> np.ndarray:
    return np.concatenate([getattr(v.record, key) for v in items])


def hashes(root: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (root / "features").glob("*/shard-*.h5")
    }


def cache_with(root: Path, fam: Family, shards: list[list[VideoFeatures]], v1=frozenset()):
    """A cache holding `shards` of `fam`; those numbered in `v1` in the old layout."""
    with FeatureCache(root, create=True) as cache:
        folder = cache.ensure_family(fam)
        for i, items in enumerate(shards):
            if i in v1:
                write_v1_shard(folder, fam, items)
            else:
                cache.commit(fam, items)
    return FeatureCache(root)


SHARDS = [[video(i) for i in range(0, 5)], [video(i) for i in range(5, 8)], [video(8, rows=0)]]
ALL = [v for items in SHARDS for v in items]


@pytest.mark.parametrize("old", [set(), {0, 2}, {0, 1, 2}], ids=["v2", "mixed", "v1"])
@pytest.mark.parametrize("extras", [True, False])
def test_load_gives_back_what_was_written_bit_for_bit(tmp_path, old, extras):
    with cache_with(tmp_path / "c", family(), SHARDS, v1=old) as cache:
        loaded = cache.load(family(), extras=extras)
        assert sorted(loaded) == sorted(v.video_id for v in ALL)
        for want in ALL:
            assert_same(loaded[want.video_id], want, extras)
        some = [ALL[7].video_id, ALL[1].video_id, ALL[3].video_id]
        assert list(cache.load(family(), some)) == some  # the order asked for
        for vid in some:
            assert_same(cache.load(family(), [vid])[vid], next(v for v in ALL if v.video_id == vid))


@pytest.mark.parametrize("old", [set(), {0, 1, 2}], ids=["v2", "v1"])
def test_plan_blocks_are_each_shard_as_concatenated_arrays(tmp_path, old):
    with cache_with(tmp_path / "c", family(), SHARDS, v1=old) as cache:
        blocks = list(cache.plan(family()).blocks(extras=True))
    assert len(blocks) == 3
    got = [vid for b in blocks for vid in b.video_ids]
    assert sorted(got) == sorted(v.video_id for v in ALL)
    for block in blocks:
        items = [next(v for v in ALL if v.video_id == vid) for vid in block.video_ids]
        assert block.family == family().name and block.shard == shard_name(block.video_ids)
        assert block.lengths.tolist() == [len(v.record.features) for v in items]
        assert (
            block.offsets.tolist() == np.concatenate([[0], np.cumsum(block.lengths)[:-1]]).tolist()
        )
        for key in ("features", "frame_index", "timestamp"):
            assert same_bits(
                getattr(block, key), concat(items, key).astype(getattr(block, key).dtype)
            )
        assert block.features.dtype == np.float32 and block.features.shape[1] == 6
        assert block.info["fps"].tolist() == [v.info.fps for v in items]
        assert list(block.info["source_path"]) == [v.source_path for v in items]
        assert list(block.info["backend"]) == [v.info.backend for v in items]
        values, offsets, lengths = block.extras["detections"]
        assert same_bits(values, np.concatenate([v.record.extras["detections"] for v in items]))
        assert lengths.tolist() == [len(v.record.extras["detections"]) for v in items]
        for got_video, want in zip(block.videos(), items):
            assert_same(got_video, want)


def test_plan_blocks_of_some_videos_hold_their_rows_alone(tmp_path):
    with cache_with(tmp_path / "c", family(), SHARDS) as cache:
        wanted = [ALL[3].video_id, ALL[0].video_id, ALL[6].video_id]
        blocks = list(cache.plan(family(), wanted).blocks())
        assert [b.video_ids for b in blocks] != [] and not blocks[0].extras
    assert sorted(vid for b in blocks for vid in b.video_ids) == sorted(wanted)
    first = blocks[[b.shard for b in blocks].index(shard_name([v.video_id for v in SHARDS[0]]))]
    assert first.video_ids == [ALL[0].video_id, ALL[3].video_id]  # shard order
    assert same_bits(first.features, concat([ALL[0], ALL[3]], "features"))
    assert same_bits(first.timestamp, concat([ALL[0], ALL[3]], "timestamp"))
    assert first.info["n_frames"].tolist() == [ALL[0].info.n_frames, ALL[3].info.n_frames]


def test_asking_for_a_video_the_family_lacks_is_an_error(tmp_path):
    with cache_with(tmp_path / "c", family(), SHARDS) as cache:
        with pytest.raises(CacheError, match=r"1 video\(s\) are not in family yolo-.*e\.g\. f+"):
            cache.load(family(), [ALL[0].video_id, "f" * 64])
        with pytest.raises(CacheError, match="are not in family"):
            cache.plan(family(), ["f" * 64])


class ReadLog:
    """Records every dataset read: (dataset name, selection), `()` for a whole dataset."""

    def __init__(self, monkeypatch):
        self.reads: list[tuple[str, object]] = []
        getitem, whole = h5py.Dataset.__getitem__, block_mod.read_whole
        read_direct = h5py.Dataset.read_direct

        def logged_getitem(ds, key, *args, **kwargs):
            self.reads.append((ds.name, key))
            return getitem(ds, key, *args, **kwargs)

        def logged_whole(group, name, **kwargs):
            self.reads.append((f"{group.name.rstrip('/')}/{name}", ()))
            return whole(group, name, **kwargs)

        def logged_read_direct(ds, dest, source_sel=None, *args, **kwargs):
            self.reads.append((ds.name, source_sel))
            return read_direct(ds, dest, source_sel, *args, **kwargs)

        monkeypatch.setattr(h5py.Dataset, "__getitem__", logged_getitem)
        monkeypatch.setattr(h5py.Dataset, "read_direct", logged_read_direct)
        monkeypatch.setattr(block_mod, "read_whole", logged_whole)

    def of(self, name: str) -> list[object]:
        return [key for ds, key in self.reads if ds == name]


def test_one_video_of_a_big_shard_reads_its_own_slice_and_nothing_else(tmp_path, monkeypatch):
    big = [video(i, rows=8, dim=64, detections=3) for i in range(400)]
    with cache_with(tmp_path / "c", family(), [big]) as cache:
        monkeypatch.setattr(
            type(cache.index), "entries", lambda *a: pytest.fail("scanned the family's entries")
        )
        log = ReadLog(monkeypatch)
        vid = big[123].video_id
        got = cache.load(family(), [vid])
        assert_same(got[vid], big[123])
        row = slice(123 * 8, 124 * 8)
        for name in ("/features", "/frame_index", "/timestamp"):
            assert log.of(name) == [row], name
        assert log.of("/extras/detections/values") == [slice(123 * 3, 124 * 3)]
        # neighbours are merged into one read; the whole shard is one read per array
        log.reads.clear()
        cache.load(family(), [big[11].video_id, big[10].video_id], extras=False)
        assert log.of("/features") == [slice(80, 96)] and not log.of("/extras/detections/values")
        log.reads.clear()
        monkeypatch.undo()
        log = ReadLog(monkeypatch)
        (block,) = cache.plan(family()).blocks()
        assert log.of("/features") == [()] and len(block) == 400


def test_many_scattered_videos_are_read_as_one_slice_of_the_whole(tmp_path, monkeypatch):
    big = [video(i, rows=2, dim=8) for i in range(300)]
    with cache_with(tmp_path / "c", family(), [big]) as cache:
        log = ReadLog(monkeypatch)
        wanted = [v.video_id for v in big[::2]]
        loaded = cache.load(family(), wanted, extras=False)
    assert log.of("/features") == [()]  # 150 small reads would cost more than one of the whole
    for v in big[::2]:
        assert_same(loaded[v.video_id], v, extras=False)


def test_read_header_reads_attributes_only(tmp_path, monkeypatch):
    with cache_with(tmp_path / "c", family(), SHARDS, v1={1}) as cache:
        paths = sorted(cache.family_dir(family()).glob("shard-*.h5"))
    log = ReadLog(monkeypatch)
    headers = [read_header(p) for p in paths]
    assert log.reads == []
    assert sorted(h.format_version for h in headers) == [1, 2, 2]


def test_the_writer_refuses_what_one_shard_cannot_hold(tmp_path):
    fam = family()
    folder = tmp_path / "f"
    folder.mkdir()
    odd = video(1)
    odd.record.extras.pop("window_frames")
    with pytest.raises(ValueError, match="every video of a shard must carry the same extras"):
        write_shard(folder, fam, [video(0), odd])
    with pytest.raises(ValueError, match=r"2-d of one width, got \(3, 5\), \(3, 6\)"):
        write_shard(folder, fam, [video(0, rows=3), video(1, rows=3, dim=5)])
    with pytest.raises(ValueError, match="the same video twice"):
        write_shard(folder, fam, [video(0), video(0)])
    assert list(folder.iterdir()) == []  # refused before any file existed


def test_a_shard_from_a_newer_harmcache_is_refused_by_name(tmp_path):
    with cache_with(tmp_path / "c", family(), SHARDS[:1]) as cache:
        path = next(cache.family_dir(family()).glob("shard-*.h5"))
        with h5py.File(path, "r+") as f:
            f.attrs["format_version"] = 3
        with pytest.raises(CacheError, match="format_version 3; this harmcache reads up to 2"):
            cache.load(family())
        with pytest.raises(CacheError, match=f"cannot read the shard {family().name}/{path.name}"):
            next(cache.plan(family()).blocks())


def test_a_truncated_shard_is_a_one_line_error_naming_it(tmp_path):
    with cache_with(tmp_path / "c", family(), SHARDS[:1]) as cache:
        path = next(cache.family_dir(family()).glob("shard-*.h5"))
        path.write_bytes(path.read_bytes()[:200])
        with pytest.raises(
            CacheError, match=r"cannot read the shard .*truncated file.*cache verify"
        ):
            cache.load(family())


def test_migrate_converts_old_shards_bit_for_bit_and_is_idempotent(tmp_path):
    root = tmp_path / "c"
    fams = [family("yolo"), family("clip")]
    for fam in fams:
        cache_with(root, fam, SHARDS, v1={0, 1, 2}).close()
    with FeatureCache(root) as cache:
        before = {f.name: cache.load(f) for f in fams}
        old = hashes(root)
        dry = migrate(cache, dry_run=True)
        assert len(dry.migrated) == 6 and dry.current == 0 and hashes(root) == old
        versions = {p.name: read_header(p).versions for p in root.glob("features/*/shard-*.h5")}

        # a migration interrupted after one shard: the rerun finishes the rest
        first = sorted(root.glob("features/*/shard-*.h5"))[0]
        assert rewrite.migrate_shard(first) is True
        report = migrate(cache)
        assert len(report.migrated) == 5 and report.current == 1 and report.unreadable == []

        assert sorted(hashes(root)) == sorted(old)  # the same shard names
        for path in root.glob("features/*/shard-*.h5"):
            header = read_header(path)
            assert header.format_version == 2 and header.versions == versions[path.name]
        for fam in fams:
            after = cache.load(fam)
            for vid, want in before[fam.name].items():
                assert_same(after[vid], want)
        assert verify(cache, {"yolo": 6, "clip": 6}) == []
        assert leftovers(cache.root) == []

        now = hashes(root)
        again = migrate(cache)
        assert again.migrated == [] and again.current == 6 and hashes(root) == now


def test_migrate_holds_the_writer_lock_so_gc_cannot_run(tmp_path, monkeypatch):
    root = tmp_path / "c"
    cache_with(root, family(), SHARDS[:1], v1={0}).close()
    refused = []
    original = rewrite.migrate_shard

    def migrate_shard(path):
        with pytest.raises(CacheError, match="is being written by a running extract") as exc:
            CacheLock(root).exclusive()
        refused.append(exc)
        return original(path)

    monkeypatch.setattr("harmcache.store.maintenance.migrate_shard", migrate_shard)
    with FeatureCache(root) as cache:
        assert len(migrate(cache).migrated) == 1
    assert len(refused) == 1
    CacheLock(root).exclusive().release()  # free again afterwards


def test_migrate_command_dry_run_then_convert(tmp_path):
    from cli.main import app

    root = tmp_path / "c"
    cache_with(root, family(), SHARDS, v1={0, 2}).close()
    run = CliRunner().invoke(app, ["cache", "migrate", str(root), "--dry-run"])
    assert run.exit_code == 0, run.output
    assert run.output.count("would migrate yolo-") == 2
    assert "2 shard(s) to migrate, 1 already current" in run.output
    run = CliRunner().invoke(app, ["cache", "migrate", str(root)])
    assert run.exit_code == 0, run.output
    assert "2 shard(s) migrated, 1 already current" in run.output
    run = CliRunner().invoke(app, ["cache", "migrate", str(root)])
    assert "0 shard(s) migrated, 3 already current" in run.output


def test_migrate_skips_an_unreadable_shard_and_names_it(tmp_path):
    root = tmp_path / "c"
    cache_with(root, family(), SHARDS[:2], v1={0, 1}).close()
    broken = sorted(root.glob("features/*/shard-*.h5"))[0]
    broken.write_bytes(broken.read_bytes()[:100])
    with FeatureCache(root) as cache:
        report = migrate(cache)
    assert report.unreadable == [f"{family().name}/{broken.name}"] and len(report.migrated) == 1


def damage(name):
    """Ways to break a columnar shard, each with the problem `verify` must name."""

    def nan_in_second_video(f):
        f["features"][f["videos/offset"][1], 0] = np.inf

    def lengths_off(f):
        f["videos/length"][0] += 1

    def timestamp_dtype(f):
        ts = f["timestamp"][()]
        del f["timestamp"]
        f.create_dataset("timestamp", data=ts.astype(np.float32))

    def no_frame_index(f):
        del f["frame_index"]

    def table_mismatch(f):
        del f["videos/video_id"]
        f["videos"].create_dataset("video_id", data=np.array(["x"] * 5, dtype=object), dtype=_STR)

    def extras_offsets(f):
        f["extras/detections/offset"][2] += 1

    second = SHARDS[0][1].video_id[:12]
    cases = {
        "nan_in_second_video": (nan_in_second_video, f"{second}: features hold NaN or inf"),
        "lengths_off": (lengths_off, "videos/offset and videos/length do not tile the"),
        "timestamp_dtype": (timestamp_dtype, "frame_index/timestamp must be int64/float64"),
        "no_frame_index": (no_frame_index, "missing dataset 'frame_index'"),
        "table_mismatch": (table_mismatch, "the video table does not match the video_ids"),
        "extras_offsets": (extras_offsets, "extras/detections offsets do not tile"),
    }  # fmt: skip
    return cases[name]


@pytest.mark.parametrize(
    "case",
    [
        "nan_in_second_video",
        "lengths_off",
        "timestamp_dtype",
        "no_frame_index",
        "table_mismatch",
        "extras_offsets",
    ],
)
def test_verify_names_each_problem_of_a_columnar_shard(tmp_path, case):
    breaker, message = damage(case)
    with cache_with(tmp_path / "c", family(), SHARDS) as cache:
        assert verify(cache, {"yolo": 6}) == []
        path = cache.family_dir(family()) / shard_name([v.video_id for v in SHARDS[0]])
        with h5py.File(path, "r+") as f:
            breaker(f)
        problems = verify(cache, {"yolo": 6})
    assert len(problems) == 1 and message in problems[0], problems


def test_verify_checks_width_and_duplicates_in_both_layouts(tmp_path):
    fam = family()
    with cache_with(tmp_path / "c", fam, SHARDS, v1={0}) as cache:
        assert verify(cache, {"yolo": 6}) == []
        assert sum("features are 6-d, expected 512" in p for p in verify(cache, {"yolo": 512})) == 7
        cache.commit(fam, [SHARDS[0][0], SHARDS[1][0], video(50)])
        problems = verify(cache, {"yolo": 6})
    assert len(problems) == 2 and all("(duplicate)" in p for p in problems)


def test_the_plain_h5py_reader_in_the_docs_reads_one_video(tmp_path):
    doc = (REPO / "docs" / "cache-format.md").read_text()
    after = doc.split("Reading one video's CLIP features without harmcache:")[1]
    code = after.split("```python\n")[1].split("```")[0]
    want = SHARDS[1][2]
    cache_with(tmp_path / "c", family("clip"), SHARDS).close()
    code = code.replace('"CACHE/', f'"{tmp_path / "c"}/').replace('"9f2c..."', repr(want.video_id))
    scope: dict = {}
    exec(code, scope)
    assert same_bits(scope["feats"], want.record.features)
    assert same_bits(scope["times"], want.record.timestamp)
