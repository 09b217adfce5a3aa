"""Exchanged hash files (harmcache/known/formats.py): vPDQ's per-frame text as its reference
implementation writes it, PDQ hex lists and hash,label CSV, read and written through
`harmcache bank add` and `bank export`; a malformed line names the file and the line."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from harmcache.known import formats, pdq
from harmcache.known.bank import HashBank
from harmcache.known.formats import HashFileError, detect_format, read_hash_file, read_vpdq
from harmcache.known.pdq import hex_rows
from harmcache.known.sources import media_entry
from tests.known.media import picture, random_hashes, save_picture, scene_video
from tests.running import invoke, last_json, ok

# The first lines of a hash file vPDQ's reference hasher wrote for its own sample video
# (vpdq/sample-hashes/chair-22-sd-sepia-bar.txt): frame number, quality, hash, timestamp.
VPDQ_SAMPLE = """\
0,100,34ad66b96f18d2491a79f80f07f2c9836fe6083dfb6983d8a4a36db40034df54,0.000
1,100,a52d66b96f58d2491a79f80f07f2c9836fe6083dfb4983d8a4a36db40034df54,0.033
2,100,a52d26b96d38d3491a79f80f0ff2c1936fe6083dfb4983d8a4a36db40034df54,0.067
"""
HASHES = hex_rows(random_hashes(3, seed=5))


def test_a_vpdq_file_as_the_reference_writes_it_is_one_entry(tmp_path):
    path = tmp_path / "chair.txt"
    path.write_text(VPDQ_SAMPLE)
    assert detect_format(path) == "vpdq"
    entry = read_vpdq(path, label="chair")
    assert len(entry) == 3 and entry.label == "chair"
    assert hex_rows(entry.hashes)[0] == VPDQ_SAMPLE.split(",")[2]
    np.testing.assert_allclose(entry.times, [0.0, 0.033, 0.067])
    assert entry.quality.tolist() == [100, 100, 100] and entry.variant.tolist() == [0, 0, 0]
    assert read_vpdq(path).label == "chair" and read_vpdq(path).entry_id == entry.entry_id


def test_hex_lists_take_an_optional_quality_and_name(tmp_path):
    path = tmp_path / "known.hex"
    path.write_text(f"# known pictures\n{HASHES[0]}\n\n{HASHES[1]},40\n{HASHES[2]} 90 cat.jpg\n")
    assert detect_format(path) == "hex"
    entries = read_hash_file(path)
    assert [e.quality.tolist() for e in entries] == [[100], [40], [90]]
    assert [e.label for e in entries] == ["known"] * 3
    assert entries[2].source.endswith("known.hex:5 cat.jpg")
    assert [hex_rows(e.hashes)[0] for e in entries] == HASHES


def test_csv_rows_carry_their_own_label(tmp_path):
    path = tmp_path / "list.csv"
    path.write_text(f'hash,label\n{HASHES[0]},cats\n{HASHES[1]},\n{HASHES[2].upper()},"a, b"\n')
    entries = read_hash_file(path, label="fallback")
    assert [e.label for e in entries] == ["cats", "fallback", "a, b"]
    assert [hex_rows(e.hashes)[0] for e in entries] == HASHES
    no_header = tmp_path / "bare.csv"
    no_header.write_text(f"{HASHES[0]},dogs,30\n")
    (only,) = read_hash_file(no_header)
    assert only.label == "dogs" and only.quality.tolist() == [30]


def test_the_same_hashes_in_any_format_are_one_entry(tmp_path):
    (tmp_path / "a.hex").write_text(f"{HASHES[0]}\n")
    (tmp_path / "b.csv").write_text(f"{HASHES[0]},x\n")
    (tmp_path / "c.txt").write_text(f"0,100,{HASHES[0]},0.000\n")
    ids = {read_hash_file(tmp_path / n)[0].entry_id for n in ("a.hex", "b.csv", "c.txt")}
    assert len(ids) == 1


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("v.txt", f"0,100,{HASHES[0]},0.0\n1,100,{HASHES[1]}\n", r"v.txt:2: a vPDQ line is"),
        ("v.txt", f"0,100,{HASHES[0]},0.0\n1,abc,{HASHES[1]},1.0\n", r"v.txt:2: the quality is"),
        ("v.txt", f"0,100,{HASHES[0]},0.0\n1,101,{HASHES[1]},1.0\n", r"v.txt:2: a quality is 0"),
        ("v.txt", f"0,100,{HASHES[0]},0.0\n1,9,{HASHES[1][:-1]}g,1\n", r"v.txt:2: a PDQ hash is"),
        ("v.txt", f"0,100,{HASHES[0]},0.0\nx,9,{HASHES[1]},1\n", r"v.txt:2: the frame number"),
        ("v.txt", f"0,100,{HASHES[0]},0.0\n1,9,{HASHES[1]},nan\n", r"v.txt:2: the timestamp is a"),
        ("l.hex", f"{HASHES[0]}\n\nabc\n", r"l.hex:3: a PDQ hash is 64 hex characters, got 'abc'"),
        ("l.hex", "# nothing\n", r"l.hex: no hashes in this hex list"),
        ("l.csv", f"hash,label\n{HASHES[0]},a,50,extra\n", r"l.csv:2: a row is `hash,label`"),
        ("l.csv", "hash,colour\n", r"l.csv:1: a header row names some of hash, label, quality"),
        ("l.csv", f"{HASHES[0][:10]},a\n", r"l.csv:1: a PDQ hash is"),
        ("b.txt", "\udcff", r"b.txt: not a text file"),
    ],
)
def test_a_malformed_line_names_the_file_and_line(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(HashFileError, match=match):
        read_hash_file(path)


def test_bank_add_of_a_bad_file_exits_2_with_the_line_and_adds_nothing(tmp_path):
    good = tmp_path / "good.hex"
    good.write_text(f"{HASHES[0]}\n")
    bad = tmp_path / "bad.hex"
    bad.write_text(f"{HASHES[1]}\nnot-a-hash\n")
    result = invoke("bank", "add", tmp_path / "bank", good, bad)
    assert result.exit_code == 2
    assert f"error: {bad}:2: a PDQ hash is 64 hex characters" in result.output
    assert not (tmp_path / "bank").exists()


def test_export_and_add_round_trip_each_format(tmp_path):
    video = scene_video(tmp_path / "clip.mp4", [10, 11, 12])
    image = save_picture(tmp_path / "photo.png", picture(20, 120, 160))
    listed = tmp_path / "listed.csv"
    listed.write_text(f"hash,label,quality\n{HASHES[0]},cats,70\n{HASHES[1]},dogs,100\n")
    ok("bank", "add", tmp_path / "bank", video, image, "--label", "known")
    ok("bank", "add", tmp_path / "bank", listed)
    source = HashBank(tmp_path / "bank").table
    assert len(source) == 4 and source.frames == len(media_entry(video)) + 8 + 2

    # vpdq: one file per entry, its own frames (a picture's first variant), times to 3 places.
    ok("bank", "export", tmp_path / "bank", tmp_path / "vpdq", "--format", "vpdq")
    files = sorted((tmp_path / "vpdq").glob("*.txt"))
    assert sorted(f.stem for f in files) == sorted(source.ids)
    ok("bank", "add", tmp_path / "from-vpdq", tmp_path / "vpdq", "--label", "known")
    back = HashBank(tmp_path / "from-vpdq").table
    own = source.variant == 0
    assert sorted(hex_rows(back.hashes)) == sorted(hex_rows(source.hashes[own]))
    original = source.entry(source.labels.index("known"))  # the video, added first
    own = original.variant == 0
    clip = next(back.entry(i) for i in range(len(back)) if len(back.entry(i)) == own.sum())
    np.testing.assert_allclose(clip.times, np.round(original.times[own], 3))
    np.testing.assert_array_equal(clip.quality, original.quality[own])

    # hex and csv: every frame (turns and mirrors too), with its quality; csv with its label.
    for fmt in ("hex", "csv"):
        out = tmp_path / f"all.{fmt}"
        ok("bank", "export", tmp_path / "bank", out, "--format", fmt)
        ok("bank", "add", tmp_path / f"from-{fmt}", out)
        back = HashBank(tmp_path / f"from-{fmt}").table
        assert hex_rows(back.hashes) == hex_rows(source.hashes)
        assert back.quality.tolist() == source.quality.tolist()
        if fmt == "csv":
            assert back.labels == [source.labels[i] for i in source.owner]
    again = invoke("bank", "add", tmp_path / "from-csv", tmp_path / "all.csv", "--json")
    assert last_json(again)["added"] == 0 and last_json(again)["skipped"] == source.frames


@pytest.mark.parametrize(
    "args, match",
    [
        (["--format", "xml"], r"--format is one of vpdq \| hex \| csv, got 'xml'"),
        (["--format", "hex", "{folder}"], r"is a folder: --format hex writes one file"),
        (["--format", "vpdq", "{file}"], r"is a file: --format vpdq writes a folder"),
    ],
)
def test_export_refuses_what_it_cannot_write(tmp_path, args, match):
    (tmp_path / "f.hex").write_text(f"{HASHES[0]}\n")
    ok("bank", "add", tmp_path / "bank", tmp_path / "f.hex")
    args = [a.format(folder=tmp_path, file=tmp_path / "f.hex") for a in args]
    out = [a for a in args if a.startswith(str(tmp_path))] or [str(tmp_path / "out")]
    flags = [a for a in args if not a.startswith(str(tmp_path))]
    result = invoke("bank", "export", tmp_path / "bank", *out, *flags)
    assert result.exit_code == 2
    assert re.search(match, result.output), result.output


def test_a_file_vpdq_itself_wrote_loads_and_matches_its_video(tmp_path):
    vpdq = pytest.importorskip("vpdq", reason="the vpdq package (needs FFmpeg headers to build)")
    video = scene_video(tmp_path / "clip.mp4", [30, 31, 32, 33], h=240, w=320)
    hashed = tmp_path / "clip.txt"
    with open(hashed, "w") as f:
        for feature in vpdq.computeHash(str(video), seconds_per_hash=1):
            f.write(f"{feature.frame_number},{feature.quality},{vpdq.hash_to_hex(feature.hash)},"
                    f"{feature.timestamp:.3f}\n")  # fmt: skip
    ok("bank", "add", tmp_path / "bank", hashed, "--label", "vpdq")
    result = ok("match", video, "--bank", tmp_path / "bank", "--json")
    (query,) = last_json(result)["queries"]
    assert [m["label"] for m in query["matches"]] == ["vpdq"]
    assert query["matches"][0]["bank_share"] >= 0.8


FIXTURES = Path(__file__).parent / "fixtures"


def test_a_file_the_reference_vpdq_wrote_loads_into_a_bank_and_matches_its_video(tmp_path):
    # Written once by the vpdq package from this very video (fixtures/README.md).
    fixture = FIXTURES / "scenes-40-44.vpdq.txt"
    video = scene_video(tmp_path / "clip.mp4", [40, 41, 42, 43, 44], h=240, w=320)
    assert detect_format(fixture) == "vpdq"
    ok("bank", "add", tmp_path / "bank", fixture, "--label", "reference")
    (entry,) = [HashBank(tmp_path / "bank").table.entry(0)]
    assert len(entry) == 5 and entry.times.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    result = ok("match", video, "--bank", tmp_path / "bank", "--json")
    (query,) = last_json(result)["queries"]
    assert [(m["label"], m["bank_share"]) for m in query["matches"]] == [("reference", 1.0)]
    assert query["matches"][0]["spans"] == [[0.0, 5.0]]
    # harmcache's own hashes of the video are those of the file, within a few bits.
    ours = pdq.hash_video(video).hashes
    assert np.diag(pdq.hamming(ours, entry.hashes)).max() <= 8


def test_formats_are_the_ones_the_docs_name():
    assert formats.FORMATS == ("vpdq", "hex", "csv")
