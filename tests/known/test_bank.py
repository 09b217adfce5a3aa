"""Hash banks (harmcache/known/bank.py, entries.py): entries committed in whole segments, read
back on open, one entry per id, and nothing half-written ever read."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harmcache.errors import CacheError
from harmcache.known.bank import BANK_FORMAT_VERSION, MARKER, BankError, HashBank, write_segment
from harmcache.known.entries import Entry, EntryTable
from harmcache.known.pdq import VARIANTS
from tests.known.media import entry, random_hashes


def test_entries_come_back_after_reopening(tmp_path):
    bank = HashBank(tmp_path / "bank", create=True)
    first, second = entry("a", random_hashes(3, 1)), entry("b", random_hashes(5, 2), label="x")
    with bank.writer() as writer:
        assert writer.add(first) and writer.add(second)
    again = HashBank(tmp_path / "bank")
    assert len(again) == 2 and again.table.frames == 8
    got = again.table.entry(1)
    assert (got.entry_id, got.label, got.source) == ("b", "x", "test:b")
    np.testing.assert_array_equal(got.hashes, second.hashes)
    np.testing.assert_array_equal(got.times, second.times)
    np.testing.assert_array_equal(got.quality, second.quality)
    assert again.info() == {
        "root": str(tmp_path / "bank"),
        "entries": 2,
        "frames": 8,
        "labels": {"known": 1, "x": 1},
        "segments": 1,
        "bytes": again.info()["bytes"],
        "damaged_segments": [],
        "leftover_temporary_files": 0,
    }


def test_a_writer_commits_a_segment_every_max_frames(tmp_path):
    bank = HashBank(tmp_path / "bank", create=True)
    with bank.writer(max_frames=4) as writer:
        for i in range(5):
            writer.add(entry(f"e{i}", random_hashes(2, i)))
        assert len(list((tmp_path / "bank" / "segments").glob("seg-*.npz"))) == 2
    assert len(HashBank(tmp_path / "bank").segments) == 3  # the last one on close


def test_an_id_already_in_the_bank_is_skipped(tmp_path):
    bank = HashBank(tmp_path / "bank", create=True)
    with bank.writer() as writer:
        writer.add(entry("a", random_hashes(2, 1)))
    with HashBank(tmp_path / "bank").writer() as writer:
        assert not writer.add(entry("a", random_hashes(2, 9), label="other"))
        assert writer.add(entry("b", random_hashes(2, 2)))
        assert not writer.add(entry("b", random_hashes(2, 2)))
        assert (writer.added, writer.skipped) == (1, 2)
    again = HashBank(tmp_path / "bank")
    assert again.table.ids == ["a", "b"] and again.table.labels == ["known", "known"]


def test_two_writers_adding_the_same_id_leave_one_entry(tmp_path):
    one = HashBank(tmp_path / "bank", create=True)
    two = HashBank(tmp_path / "bank")
    w1, w2 = one.writer(), two.writer()
    w1.add(entry("same", random_hashes(2, 1), label="first"))
    w2.add(entry("same", random_hashes(2, 1), label="second"))
    w1.close()
    w2.close()  # committed later: its copy is dropped on open
    assert len(list(one.segments_dir.glob("seg-*.npz"))) == 2
    again = HashBank(tmp_path / "bank")
    assert again.table.ids == ["same"] and again.table.labels == ["first"]


def test_half_written_and_damaged_segments_are_never_read(tmp_path, caplog):
    bank = HashBank(tmp_path / "bank", create=True)
    with bank.writer() as writer:
        writer.add(entry("kept", random_hashes(4, 1)))
    segments = tmp_path / "bank" / "segments"
    whole = next(segments.glob("seg-*.npz")).read_bytes()
    # What a writer killed mid-write leaves: its temporary file, never renamed.
    (segments / ".seg-9-1-abc.npz.tmp-1-deadbeef").write_bytes(whole[: len(whole) // 2])
    # What no writer leaves but a damaged disk might: a committed name over broken bytes.
    (segments / "seg-99999999999999999999-1-broken.npz").write_bytes(whole[: len(whole) // 2])
    again = HashBank(tmp_path / "bank")
    assert again.table.ids == ["kept"]
    info = again.info()
    assert info["damaged_segments"] == ["seg-99999999999999999999-1-broken.npz"]
    assert info["leftover_temporary_files"] == 1
    assert "damaged bank segment" in caplog.text


def test_a_folder_that_is_not_a_bank_is_refused(tmp_path):
    with pytest.raises(BankError, match=r"is not a hash bank \(no harmcache-bank.json\)"):
        HashBank(tmp_path)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "video.mp4").write_bytes(b"x")
    with pytest.raises(BankError, match=r"exists and is not a hash bank"):
        HashBank(tmp_path / "busy", create=True)
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / MARKER).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(BankError, match=r"is not a hash bank's marker"):
        HashBank(tmp_path / "odd")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / MARKER).write_text(json.dumps({"format": "harmcache-bank", "version": 9}))
    with pytest.raises(BankError, match=r"newer bank format \(9\)"):
        HashBank(tmp_path / "new")
    assert issubclass(BankError, CacheError) and BankError.exit_code == 4


def stamp_segment(path, version: int) -> None:
    """Rewrite a committed segment as if written by bank format `version`."""
    with np.load(path) as z:
        arrays = dict(z)
    meta = json.loads(bytes(arrays["meta"]))
    meta["version"] = version
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_a_newer_segment_is_refused_by_name(tmp_path):
    bank = HashBank(tmp_path / "bank", create=True)
    path = write_segment(bank.segments_dir, EntryTable.from_entries([entry("a", random_hashes(1))]))
    stamp_segment(path, 7)
    again = HashBank(tmp_path / "bank")
    assert len(again) == 0 and again.damaged == [path.name]


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"hashes": np.zeros((2, 16), np.uint8)}, r"hashes are \(N, 32\) uint8"),
        ({"quality": [100]}, r"quality is \(2,\), got \(1,\)"),
        ({"times": [0.0, 1.0, 2.0]}, r"times is \(2,\), got \(3,\)"),
        ({"variant": [0, len(VARIANTS)]}, rf"variants are 0 to {len(VARIANTS) - 1}"),
    ],
)
def test_an_entry_checks_its_arrays(fields, match):
    values = {
        "entry_id": "a", "label": "l", "source": "s", "hashes": random_hashes(2),
        "quality": [100, 100], "times": [0.0, 1.0], **fields,
    }  # fmt: skip
    with pytest.raises(ValueError, match=match):
        Entry(**values)


def test_tables_join_keeping_each_id_once():
    a = EntryTable.from_entries([entry("a", random_hashes(2, 1)), entry("b", random_hashes(1, 2))])
    b = EntryTable.from_entries([entry("b", random_hashes(3, 3)), entry("c", random_hashes(2, 4))])
    joined = EntryTable.concat([a, b])
    assert joined.ids == ["a", "b", "c"] and joined.frames == 5
    assert joined.owner.tolist() == [0, 0, 1, 2, 2]
    np.testing.assert_array_equal(joined.entry(1).hashes, a.entry(1).hashes)
    assert EntryTable.concat([]).frames == 0


def test_passing_counts_are_per_entry_and_variant():
    image = Entry("img", "l", "s", random_hashes(8), [90] * 8, [0.0] * 8, np.arange(8))
    video = entry("vid", random_hashes(3), quality=np.array([10, 60, 100]))
    counts = EntryTable.from_entries([image, video]).passing_counts(50)
    crops = len(VARIANTS) - 8
    assert counts[0].tolist() == [1] * 8 + [0] * crops
    assert counts[1].tolist() == [2] + [0] * (7 + crops)


def test_adding_to_a_version_1_bank_stamps_it_with_the_new_format(tmp_path):
    bank = HashBank(tmp_path / "bank", create=True)
    old = write_segment(bank.segments_dir, EntryTable.from_entries([entry("a", random_hashes(2))]))
    stamp_segment(old, 1)
    (tmp_path / "bank" / MARKER).write_text(json.dumps({"format": "harmcache-bank", "version": 1}))

    again = HashBank(tmp_path / "bank")
    assert again.version == 1 and len(again) == 1
    with again.writer() as writer:
        writer.add(entry("b", random_hashes(3, seed=1)))
    marker = json.loads((tmp_path / "bank" / MARKER).read_text())
    assert marker == {"format": "harmcache-bank", "version": BANK_FORMAT_VERSION}
    reopened = HashBank(tmp_path / "bank")
    assert sorted(reopened.table.ids) == ["a", "b"] and not reopened.damaged
