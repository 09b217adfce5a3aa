"""File names that are not UTF-8 (a Latin-1 `caf\\xe9.mp4`, a plain `\\xff\\xfe.mp4`): every name
the filesystem holds is extracted, indexed, ledgered and reported exactly, and shown readably."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from harmcache.extractors.base import FeatureRecord
from harmcache.paths import is_utf8, json_line, restored, shown, stored
from harmcache.store import maintenance
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.store.index import Index
from harmcache.store.ledger import JsonLog
from harmcache.train.labels import join_labels, read_labels
from harmcache.train.split import write_split
from harmcache.types import VideoFeatures, VideoInfo
from harmcache.video.encode import write_video
from tests.cli.test_extract import TINY, cli, last_json
from tests.conftest import coded_frames
from tests.synthetic_cache import build

LATIN1 = os.fsdecode(b"/videos/caf\xe9.mp4")
GARBAGE = os.fsdecode(b"/videos/\xff\xfe.mp4")
UTF8 = "/videos/vidéo 폭력.mp4"

# The folder every end-to-end test extracts: name → (status, reason) of that input.
EXPECTED = {
    b"caf\xe9.mp4": ("extracted", None),
    b"copie de caf\xe9.mp4": ("cached", None),  # the same bytes under a second odd name
    b"\xff\xfe.mp4": ("extracted", None),
    b"cass\xe9.mp4": ("failed", "unreadable"),
}
MISSING = b"disparu \xe9.mp4"
"""Named on the command line, never created."""


def named(folder: Path, raw: bytes) -> Path:
    """The path of the file called `raw` (bytes, as the filesystem holds them) in `folder`."""
    return folder / os.fsdecode(raw)


@pytest.fixture
def odd_folder(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    try:
        named(folder, b"\xff.probe").write_bytes(b"")
    except OSError as exc:  # a filesystem that only holds UTF-8 names (ZFS utf8only, APFS)
        pytest.skip(f"this filesystem refuses names that are not UTF-8: {exc}")
    named(folder, b"\xff.probe").unlink()
    cafe = write_video(named(folder, b"caf\xe9.mp4"), coded_frames(8, seed=11), fps=8)
    shutil.copy(cafe, named(folder, b"copie de caf\xe9.mp4"))
    write_video(named(folder, b"\xff\xfe.mp4"), coded_frames(8, seed=12), fps=8)
    named(folder, b"cass\xe9.mp4").write_text("a text file renamed to .mp4\n" * 40)
    return folder


# --- the path functions ------------------------------------------------------------------------
@pytest.mark.parametrize("path", [LATIN1, GARBAGE, UTF8, "/plain/a.mp4"])
def test_stored_gives_every_name_back_and_leaves_utf8_as_text(path):
    kept = stored(path)
    assert restored(kept) == path
    if is_utf8(path):
        assert kept == path
    else:
        assert kept == os.fsencode(path)


@pytest.mark.parametrize(
    "text,want",
    [
        (LATIN1, "/videos/caf\\xe9.mp4"),
        (GARBAGE, "/videos/\\xff\\xfe.mp4"),
        (UTF8, UTF8),
        ("no such file: " + LATIN1, "no such file: /videos/caf\\xe9.mp4"),
        ("\ud800.mp4", "\\ud800.mp4"),  # a lone surrogate no POSIX name decodes to
    ],
)
def test_shown_is_printable_utf8(text, want):
    assert shown(text) == want
    assert is_utf8(shown(text))


@pytest.mark.parametrize("path", [LATIN1, GARBAGE, UTF8])
def test_json_line_is_utf8_and_reads_back_exactly(path):
    line = json_line({"path": path, "video_id": None})
    assert is_utf8(line) and "\n" not in line
    assert json.loads(line)["path"] == path
    if is_utf8(path):  # a readable name stays readable in the file
        assert path in line


# --- the store -----------------------------------------------------------------------------------
def test_index_stores_and_finds_memo_and_sightings_by_odd_paths(tmp_path):
    index = Index(tmp_path / "index.sqlite")
    index.set_memo([(LATIN1, (10, 20, 30), "a" * 64)])
    # A row as an index written before kept it (every path TEXT): found with no migration.
    index.db.execute("INSERT INTO memo VALUES (?, 1, 2, 3, ?)", (UTF8, "b" * 64))
    index.set_sources([(LATIN1, "a" * 64), (GARBAGE, "c" * 64), (UTF8, "b" * 64)])
    assert index.memo_of([LATIN1, GARBAGE, UTF8]) == {
        LATIN1: ((10, 20, 30), "a" * 64),
        UTF8: ((1, 2, 3), "b" * 64),
    }
    assert index.sources_of([GARBAGE, "/videos/other.mp4"]) == {GARBAGE: "c" * 64}
    assert index.sources() == {LATIN1: "a" * 64, GARBAGE: "c" * 64, UTF8: "b" * 64}
    kinds = dict(index.db.execute("SELECT typeof(path), COUNT(*) FROM sources GROUP BY 1"))
    assert kinds == {"blob": 2, "text": 1}  # a UTF-8 name is kept as it always was
    index.close()


def test_ledger_lines_read_back_exactly_and_stay_utf8(tmp_path):
    log = JsonLog(tmp_path / "failures.jsonl")
    log.append(path=LATIN1, reason="missing", message=f"no such file: {LATIN1}")
    log.extend([{"path": GARBAGE}, {"path": UTF8}])
    assert [r["path"] for r in log.read()] == [LATIN1, GARBAGE, UTF8]
    assert log.read()[0]["message"] == f"no such file: {LATIN1}"
    text = log.path.read_text(encoding="utf-8")  # strict: every line is UTF-8
    assert UTF8 in text


def _item(vid: str, source: str) -> VideoFeatures:
    record = FeatureRecord(np.ones((2, 4), np.float32), np.arange(2), np.arange(2) / 5.0)
    return VideoFeatures(vid, VideoInfo(10, 5.0, 2.0, 64, 32, "pyav"), source, record)


def test_shards_keep_the_source_path_of_an_odd_name(tmp_path):
    family = Family.from_spec(
        {"extractor": "clip", "version": "1", "weights": {"kind": "random-init", "seed": 0}}
    )
    with FeatureCache(tmp_path / "c", create=True) as cache:
        first = cache.commit(family, [_item("a" * 64, LATIN1)])
        cache.commit(family, [_item("b" * 64, UTF8)])
        with h5py.File(first, "r") as f:  # the name's own bytes
            assert f["videos/source_path"][()].tolist() == [os.fsencode(LATIN1)]
        loaded = cache.load(family)
        assert {v.source_path for v in loaded.values()} == {LATIN1, UTF8}
        (block,) = cache.plan(family, ["a" * 64]).blocks()
        assert block.info["source_path"].tolist() == [LATIN1]
        compacted = maintenance.compact(cache, shard_videos=2)
        assert compacted.merged == 2  # reads back bit for bit, name included
        assert {v.source_path for v in cache.load(family).values()} == {LATIN1, UTF8}
        assert maintenance.verify(cache) == []


def test_cache_finds_odd_sightings_and_failures_after_a_reindex(tmp_path):
    with FeatureCache(tmp_path / "c", create=True) as cache:
        assert cache.record_sources([(LATIN1, "a" * 64), (GARBAGE, "c" * 64)]) == 2
        assert cache.record_sources([(LATIN1, "a" * 64)]) == 0  # seen: found by its odd path
        cache.remember_identities([(GARBAGE, (1, 2, 3), "c" * 64)])
        cache.record_failure(GARBAGE, "c" * 64, "unreadable", "not a video")
        maintenance.reindex(cache)
        assert cache.sources() == {LATIN1: "a" * 64, GARBAGE: "c" * 64}
        assert list(cache.failed()) == [GARBAGE]
        assert cache.info()["failures"] == 1


# --- labels --------------------------------------------------------------------------------------
def test_labels_name_an_odd_file_by_its_readable_form(tmp_path):
    syn = build(tmp_path, 4)
    odd = str(tmp_path / "videos" / os.fsdecode(b"caf\xe9.mp4"))
    syn.cache.record_sources([(odd, syn.ids[0])])
    labels = tmp_path / "labels.csv"
    relative = shown(os.path.relpath(odd, tmp_path))  # videos/caf\xe9.mp4
    labels.write_text(f"path,label\n{relative},1\n{syn.paths[1]},0\n", encoding="utf-8")
    videos, report = join_labels(read_labels(labels), syn.cache)
    assert report.matched_rows == 2
    assert {v.video_id: v.paths for v in videos}[syn.ids[0]] == [odd]

    write_split(tmp_path / "split.csv", videos, {v.video_id: "train" for v in videos})
    assert shown(odd) in (tmp_path / "split.csv").read_text(encoding="utf-8")


# --- end to end ----------------------------------------------------------------------------------
def check_run(summary: dict, folder: Path, missing: Path, out: Path) -> dict[bytes, dict]:
    """Every input accounted for under its exact name; the ledger, sightings and shards agree."""
    got = {os.fsencode(r["path"]): r for r in summary["inputs"]}
    want = {os.fsencode(named(folder, raw)): status for raw, status in EXPECTED.items()}
    want[os.fsencode(missing)] = ("failed", "missing")
    assert set(got) == set(want)
    for name, (status, reason) in want.items():
        assert got[name]["status"] == status, got[name]
        if reason:
            assert got[name]["reason"] == reason, got[name]
    for raw in EXPECTED:  # a program finds each file again by the summary's path
        row = got[os.fsencode(named(folder, raw))]
        assert os.fsencode(Path(row["path"]).relative_to(folder)) == raw
        assert Path(row["path"]).is_file()
    by_raw = {raw: got[os.fsencode(named(folder, raw))] for raw in EXPECTED}
    assert by_raw[b"copie de caf\xe9.mp4"]["video_id"] == by_raw[b"caf\xe9.mp4"]["video_id"]

    with FeatureCache(out) as cache:
        failed = cache.failed()
        assert {os.fsencode(p) for p in failed} == {
            os.fsencode(named(folder, b"cass\xe9.mp4").absolute()),
            os.fsencode(missing.absolute()),
        }
        assert {row["reason"] for row in failed.values()} == {"unreadable", "missing"}
        sources = cache.sources()
        for raw, row in by_raw.items():
            assert sources[str(named(folder, raw).absolute())] == row["video_id"]
        extracted = {
            str(named(folder, raw)) for raw, (s, _) in EXPECTED.items() if s == "extracted"
        }
        for family in cache.families():
            assert {v.source_path for v in cache.load(family).values()} == extracted
    for line in (out / "failures.jsonl").read_bytes().splitlines():
        row = json.loads(line.decode("utf-8"))  # strict UTF-8, and the exact name back
        assert os.fsencode(row["path"]) in {os.fsencode(p) for p in failed}
    return by_raw


def test_extract_and_every_cache_command_take_names_that_are_not_utf8(
    odd_folder, tmp_path, monkeypatch
):
    out = named(tmp_path, b"cache \xe9")  # the cache folder's own name is odd too
    missing = named(tmp_path, MISSING)
    first = cli("extract", odd_folder, missing, "--out", out, "--json", *TINY)
    assert first.exit_code == 0, first.stderr
    summary = last_json(first)
    assert (summary["extracted"], summary["cached"], summary["failed"]) == (2, 1, 2)
    check_run(summary, odd_folder, missing, out)
    broken = shown(str(named(odd_folder, b"cass\xe9.mp4")))
    assert f"failed {broken}: unreadable" in first.stderr and "cass\\xe9.mp4" in broken
    assert f"failed {shown(str(missing))}: missing" in first.stderr
    assert "Traceback" not in first.stderr

    def no_reading(path):
        raise AssertionError(f"{shown(str(path))} was hashed again")

    monkeypatch.setattr(sys.modules["harmcache.extract.inputs"], "sha256_file", no_reading)
    again = cli("extract", odd_folder, missing, "--out", out, "--json", *TINY)
    assert again.exit_code == 0, again.stderr
    rerun = last_json(again)  # every identity from the memo, no file read
    assert (rerun["extracted"], rerun["cached"], rerun["failed"]) == (0, 3, 2)

    info = cli("cache", "info", out)
    assert info.exit_code == 0, info.stderr
    assert f"cache {shown(str(out))}: 3 video(s) seen" in info.stdout
    assert "failures: 2 (missing 1, unreadable 1)" in info.stdout
    report = last_json(cli("cache", "info", out, "--json"))
    assert (report["root"], report["videos"], report["failures"]) == (str(out), 3, 2)
    verify = cli("cache", "verify", out)
    assert verify.exit_code == 0 and "is consistent" in verify.stdout, verify.stderr
    reindex = cli("cache", "reindex", out)
    assert reindex.exit_code == 0, reindex.stderr
    check_run(summary, odd_folder, missing, out)


@pytest.mark.slow
def test_default_extract_command_takes_names_that_are_not_utf8(odd_folder, tmp_path):
    """The README's command as a real process: default frames, decode workers, model sizes."""
    out, missing = tmp_path / "cache", named(tmp_path, MISSING)
    exe = Path(sys.executable).with_name("harmcache")
    args = [exe, "extract", odd_folder, missing, "--out", out, "--random-init", "--json"]
    proc = subprocess.run(args, capture_output=True, timeout=900)
    stderr = proc.stderr.decode("utf-8")  # strict: everything shown is UTF-8
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    summary = json.loads(proc.stdout.decode("utf-8").strip().splitlines()[-1])
    by_raw = check_run(summary, odd_folder, missing, out)
    assert by_raw[b"\xff\xfe.mp4"]["status"] == "extracted"
    assert "failed 2" in stderr and "cass\\xe9.mp4" in stderr


@pytest.mark.slow
def test_ray_engine_takes_names_that_are_not_utf8(odd_folder, tmp_path):
    """Ray Data carries rows as Arrow, which holds only UTF-8 strings: such a path must still
    reach the decode tasks and come back to the driver exactly."""
    pytest.importorskip("ray")
    out, missing = tmp_path / "cache", named(tmp_path, MISSING)
    flags = [a for a in TINY if a not in ("--workers", "0")]
    result = cli("extract", odd_folder, missing, "--out", out, "--json", "--engine", "ray", *flags)
    assert result.exit_code == 0, result.stderr
    check_run(last_json(result), odd_folder, missing, out)
