"""The index at scale: every statement that touches many videos goes through an index or a
set-based pass (never a scan of the family per shard), summaries are counted, not built, and
what is read once is not read again. Each check here fails on the per-shard, set-building
index this one replaced."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.store.index import Index
from harmcache.store.keys import id_of, key_of
from harmcache.store.ledger import JsonLog
from harmcache.store.maintenance import compact, verify
from tests.running import ok
from tests.store.test_cache import item, spec


def plan_of(db: sqlite3.Connection, sql: str, args: tuple) -> str:
    return " | ".join(row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", args))


def test_statements_over_many_videos_search_an_index_never_scan_the_family(tmp_path):
    index = Index(tmp_path / "index.sqlite")
    lookups = {
        "DELETE FROM entries WHERE shard = ?": (1,),  # compaction and a vanished shard
        "SELECT video_id FROM entries WHERE shard = ?": (1,),  # a family streamed by shard
        "SELECT e.video_id, s.file FROM entries e JOIN shards s ON s.id = e.shard "
        "WHERE e.family = ? AND e.video_id IN (?, ?)": (1, b"a", b"b"),
        "SELECT video_id, path FROM sources WHERE video_id IN (?, ?)": (b"a", b"b"),
        "SELECT path, video_id FROM sources WHERE path IN (?, ?)": ("a", "b"),
        "SELECT path, size, mtime_ns, inode, video_id FROM memo WHERE path IN (?, ?)": (
            "a",
            "b",
        ),
        "SELECT id FROM shards WHERE family = ? AND file IN (?)": (1, "x"),
    }
    for sql, args in lookups.items():
        plan = plan_of(index.db, sql, args)
        assert "SEARCH" in plan and "SCAN" not in plan, (sql, plan)
    index.close()


def test_a_few_lookups_never_read_the_family_s_shard_list(tmp_path, monkeypatch):
    """`verify` asks where one shard's videos live once per shard: a question that walked
    every shard of the family would make it quadratic in shards."""
    fam = Family.from_spec(spec())
    with FeatureCache(tmp_path / "c", create=True) as cache:
        for i in range(3):
            cache.commit(fam, [item(f"{i:064x}")])
        walked = []
        for name in ("_shard_names", "_held"):
            monkeypatch.setattr(cache.index, name, lambda *a, name=name: walked.append(name))
        where = cache.index.shards_of(fam.name, [f"{1:064x}", "nope"])
    assert list(where) == [f"{1:064x}"] and not walked


def test_a_video_id_is_kept_as_its_32_bytes_and_any_other_id_as_text():
    sha = "ab" * 32
    assert key_of(sha) == bytes.fromhex(sha) and id_of(key_of(sha)) == sha
    for other in ("v1", "AB" * 32, "ab" * 31):  # upper case would not round-trip as bytes
        assert key_of(other) == other and id_of(key_of(other)) == other


def test_ids_of_both_kinds_are_found_by_lookup_and_by_scan(tmp_path, monkeypatch):
    from harmcache.store import index

    monkeypatch.setattr(index, "SCAN_MIN", 8)  # a scan needs a large question; this one is
    fam = Family.from_spec(spec())
    ids = [f"{i:064x}" for i in range(40)] + ["short-id", "ZZ" * 32]
    with FeatureCache(tmp_path / "c", create=True) as cache:
        for start in range(0, len(ids), 7):
            cache.commit(fam, [item(v) for v in ids[start : start + 7]])
        few = cache.index.shards_of(fam.name, ids[:3] + ["short-id", "missing"])  # lookups
        every = cache.index.shards_of(fam.name, ids + ["missing"])  # a scan (most of it)
        assert sorted(few) == sorted(ids[:3] + ["short-id"])
        assert every == cache.index.entries(fam.name) and len(every) == len(ids)
        streamed = list(cache.index.iter_entries(fam.name))
        assert sorted(v for v, _ in streamed) == sorted(ids)
        shards = [s for _, s in streamed]
        assert shards == sorted(shards)  # shard by shard, in name order
        assert cache.count(fam) == len(ids) == cache.index.distinct_videos()
        assert cache.holding(fam, ["short-id", "missing"]) == {"short-id"}


def test_cache_info_counts_without_building_any_set_of_videos(tmp_path, monkeypatch):
    fam = Family.from_spec(spec())
    root = tmp_path / "c"
    with FeatureCache(root, create=True) as cache:
        cache.commit(fam, [item("a" * 64), item("b" * 64)])
        cache.record_sources([("/v/a.mp4", "a" * 64), ("/v/b.mp4", "b" * 64)])
        cache.record_sources([("/v/a-copy.mp4", "a" * 64)])
        cache.record_failure("/v/c.mp4", None, "unreadable", "cannot open")
        cache.record_failure("/v/a.mp4", "a" * 64, "decode_error", "fixed since", family=fam.name)
    for name in ("entries", "sources", "first_paths"):
        monkeypatch.setattr(Index, name, lambda *a, **k: pytest.fail("built a whole set"))
    monkeypatch.setattr(FeatureCache, "committed", lambda *a: pytest.fail("built a set"))
    with FeatureCache(root) as cache:
        info = cache.info()
    assert info["videos"] == 2 and info["families"][0]["videos"] == 2
    assert info["failures"] == 1 and info["failure_reasons"] == {"unreadable": 1}


def test_new_sightings_are_read_from_where_the_index_left_off(tmp_path, monkeypatch):
    root = tmp_path / "c"
    with FeatureCache(root, create=True) as cache:
        cache.record_sources([("/v/a.mp4", "a" * 64)])
    log = root / "sources.jsonl"
    indexed = log.stat().st_size
    line = json.dumps({"path": "/v/b.mp4", "video_id": "b" * 64}) + "\n"
    with open(log, "a") as f:  # another writer's sighting, and half of one being written
        f.write(line + '{"path": "/v/c.mp4", "vid')
    starts = []
    real = JsonLog.rows_from

    def spy(self, start, end):
        starts.append(start)
        return real(self, start, end)

    monkeypatch.setattr(JsonLog, "rows_from", spy)
    with FeatureCache(root) as cache:
        assert cache.index.sources_of(["/v/a.mp4", "/v/b.mp4"]) == {
            "/v/a.mp4": "a" * 64,
            "/v/b.mp4": "b" * 64,
        }
    assert starts == [indexed]  # never from the start
    with open(log, "a") as f:  # the half line completed
        f.write('eo_id": "' + "c" * 64 + '"}\n')
    with FeatureCache(root) as cache:
        assert cache.index.sources_of(["/v/c.mp4"]) == {"/v/c.mp4": "c" * 64}
    assert starts == [indexed, indexed + len(line)]


def test_verify_sample_checks_that_many_shards_and_finds_a_broken_one(tmp_path):
    fam = Family.from_spec(spec())
    root = tmp_path / "c"
    with FeatureCache(root, create=True) as cache:
        paths = [cache.commit(fam, [item(f"{i:064x}")]) for i in range(6)]
    paths[2].write_bytes(b"not hdf5")
    with FeatureCache(root) as cache:
        full = verify(cache, {"clip": 4})
        assert any("cannot be read" in p for p in full)
        sampled = [verify(cache, {"clip": 4}, sample=2, seed=s) for s in range(12)]
        assert any(sampled) and not all(sampled)  # found only when drawn
        assert verify(cache, {"clip": 4}, sample=6) == full  # a sample of all is the full check


def test_verify_sample_on_a_clean_cache_says_it_checked_a_sample(tmp_path):
    fam = Family.from_spec(spec())
    root = tmp_path / "c"
    with FeatureCache(root, create=True) as cache:
        for i in range(4):
            cache.commit(fam, [item(f"{i:064x}", dim=512)])
    out = ok("cache", "verify", str(root), "--sample", "2").output
    assert "the 2 shard(s) per family checked of 4 are consistent" in out


def test_compaction_repoints_entries_without_scanning_the_family_per_shard(tmp_path):
    """Compaction used to run a family-wide DELETE per old shard; now each statement is a
    keyed one, so the number of rows SQLite visits grows with the videos moved alone."""
    fam = Family.from_spec(spec())
    root = tmp_path / "c"
    with FeatureCache(root, create=True) as cache:
        for i in range(0, 64, 2):
            cache.commit(fam, [item(f"{i:064x}"), item(f"{i + 1:064x}")])
        steps = []
        cache.index.db.set_progress_handler(lambda: steps.append(1), 100)
        report = compact(cache, shard_videos=64)
        cache.index.db.set_progress_handler(None, 100)
        assert report.merged == 32 and cache.count(fam) == 64
        assert verify(cache, {"clip": 4}) == []
    # 32 shards merged: a family-wide scan per shard would visit 32 x 64 rows (and more).
    assert len(steps) * 100 < 40_000, len(steps) * 100


def test_a_question_about_most_paths_scans_and_answers_the_same(tmp_path, monkeypatch):
    from harmcache.store import path_tables

    with FeatureCache(tmp_path / "c", create=True) as cache:
        pairs = [(f"/videos/v{i:03d}.mp4", f"{i:064x}") for i in range(50)]
        pairs.append((os.fsdecode(b"/videos/caf\xe9.mp4"), "ab" * 32))
        cache.record_sources(pairs)
        asked = [p for p, _ in pairs[::2]] + ["/videos/never.mp4"]
        looked_up = cache.index.sources_of(asked)
        scans = []
        real = cache.index.db
        monkeypatch.setattr(path_tables, "SCAN_MIN", 1)

        class Spy:
            def execute(self, sql, *args):
                scans.append(sql)
                return real.execute(sql, *args)

        cache.index.db = Spy()
        scanned = cache.index.sources_of(asked)
        cache.index.db = real
    assert scanned == looked_up and len(scanned) == 26
    assert any("WHERE" not in sql and "COUNT" not in sql for sql in scans)
