"""The matching rule (harmcache/known/match.py) on synthetic hashes: vPDQ's thresholds, the
bank share that finds a short clip in a long query, the query share, spans on the query's
clock, turns and mirrors taken variant by variant, and the rule's settings checked."""

from __future__ import annotations

import numpy as np
import pytest

from harmcache.errors import UsageError
from harmcache.known.entries import Entry, EntryTable
from harmcache.known.match import BANK_SHARE, MatchRule, frame_spans, match, match_many
from harmcache.known.pdq import DIHEDRAL, MATCH_DISTANCE, MIN_QUALITY, FrameHashes
from tests.known.media import entry, flipped, random_hashes

CLIP = random_hashes(3, seed=100)


def query(hashes: np.ndarray, quality=None, start: float = 0.5) -> FrameHashes:
    n = len(hashes)
    quality = np.full(n, 100) if quality is None else np.asarray(quality)
    return FrameHashes(np.arange(n) + start, hashes, quality)


def upload(before: int = 5, after: int = 4, clip: np.ndarray = CLIP) -> np.ndarray:
    return np.concatenate([random_hashes(before, 1), clip, random_hashes(after, 2)])


def bank(*entries: Entry) -> EntryTable:
    return EntryTable.from_entries(list(entries))


def test_the_defaults_are_vpdqs():
    assert (MATCH_DISTANCE, MIN_QUALITY, BANK_SHARE) == (31, 50, 0.8)
    assert MatchRule() == MatchRule(31, 50, 0.8)


def test_a_short_clip_is_found_inside_a_long_query_where_it_is():
    known = bank(entry("clip", CLIP), entry("other", random_hashes(40, 3)))
    (found,) = match(query(flipped(upload(), 12)), known)
    assert (found.entry_id, found.label) == ("clip", "known")
    assert found.bank_share == 1.0 and found.query_share == 3 / 12
    assert found.spans == [(5.0, 8.0)] and found.variant == "original"  # the clip's seconds
    assert found.to_json() == {
        "label": "known", "query_share": 0.25, "bank_share": 1.0, "spans": [[5.0, 8.0]]
    }  # fmt: skip


@pytest.mark.parametrize("bits, matches", [(31, True), (32, False)])
def test_frames_match_at_most_the_distance_apart(bits, matches):
    known = bank(entry("clip", CLIP))
    assert bool(match(query(flipped(CLIP, bits)), known)) is matches
    assert bool(match(query(flipped(CLIP, bits)), known, distance=bits)) is True


def test_an_entry_matches_when_the_bank_share_is_reached():
    clip = random_hashes(5, seed=7)
    known = bank(entry("clip", clip))
    four = np.concatenate([clip[:4], random_hashes(1, 8)])  # 4 of the 5 frames: 80 %
    (found,) = match(query(four), known)
    assert found.bank_share == 0.8
    assert match(query(four), known, bank_share=0.81) == []
    three = np.concatenate([clip[:3], random_hashes(2, 9)])
    assert match(query(three), known) == []
    assert match(query(three), known, bank_share=0.6)[0].bank_share == 0.6


def test_low_quality_frames_are_left_out_on_both_sides():
    clip = random_hashes(5, seed=11)
    # The entry's two dark frames do not count: the query holds all 3 that do.
    known = bank(entry("clip", clip, quality=np.array([100, 10, 100, 10, 100])))
    (found,) = match(query(clip[[0, 2, 4]]), known)
    assert found.bank_share == 1.0
    # A query frame below the floor is never compared, and not counted in the query share.
    faint = query(np.concatenate([clip[[0, 2, 4]], random_hashes(1, 3)]), [100, 100, 40, 100])
    assert match(faint, known) == []  # 2 of the entry's 3 frames
    (found,) = match(faint, known, bank_share=0.6)
    assert (found.bank_share, found.query_share) == (2 / 3, 2 / 3)
    # With no floor every frame counts: the entry's dark ones too.
    (found,) = match(faint, known, quality=0, bank_share=0.5)
    assert (found.bank_share, found.query_share) == (3 / 5, 3 / 4)


def test_query_share_is_the_share_of_the_query_found():
    known = bank(entry("clip", CLIP))
    (found,) = match(query(np.concatenate([CLIP, CLIP[:1]])), known)
    assert found.query_share == 1.0 and found.bank_share == 1.0


def test_unrelated_queries_match_nothing():
    known = bank(entry("a", random_hashes(30, 1)), entry("b", random_hashes(3, 2)))
    assert match(query(random_hashes(60, 99)), known) == []
    assert match(query(random_hashes(0, 0)), known) == []
    assert match(query(CLIP), bank()) == []


def test_a_mirror_matches_its_variant_and_is_reported_once():
    variants = random_hashes(8, seed=21)
    image = Entry("img", "photo", "s", variants, [100] * 8, [0.0] * 8, np.arange(8))
    (found,) = match(query(flipped(variants[4:5], 5), start=0.0), bank(image))
    assert found.variant == DIHEDRAL[4] and found.bank_share == 1.0
    assert found.spans == [(0.0, 0.0)]  # a still image has no duration


def test_matches_come_best_first():
    half = CLIP[:2]
    known = bank(entry("whole", CLIP, label="b"), entry("part", half, label="a"))
    found = match(query(np.concatenate([half, random_hashes(1, 5)])), known, bank_share=0.5)
    assert [m.entry_id for m in found] == ["part", "whole"]


def test_match_many_is_match_per_query(monkeypatch):
    from harmcache.known import match as match_module

    known = bank(entry("clip", CLIP), entry("other", random_hashes(10, 3)))
    queries = [query(upload()), query(random_hashes(7, 4)), query(np.zeros((0, 32), np.uint8)),
               query(flipped(CLIP, 9))]  # fmt: skip
    monkeypatch.setattr(match_module, "BATCH_FRAMES", 5)  # several passes
    assert match_many(queries, known) == [match(q, known) for q in queries]


@pytest.mark.parametrize(
    "times, matched, passing, spans",
    [
        ([0, 1, 2, 3, 4], [1, 2], [1] * 5, [(0.5, 2.5)]),
        ([0, 1, 2, 3, 4], [1, 3], [1] * 5, [(0.5, 1.5), (2.5, 3.5)]),
        ([0, 1, 2, 3, 4], [1, 3], [1, 1, 0, 1, 1], [(0.5, 3.5)]),  # a dark frame does not split
        ([0, 1, 2, 3, 4], [4], [1] * 5, [(3.5, 4.5)]),  # the last frame: half a median step on
        ([0, 1, 2, 3, 4], [0], [1] * 5, [(0.0, 0.5)]),  # never before the video's start
        ([0.5, 1.5, 2.5], [0, 1, 2], [1] * 3, [(0.0, 3.0)]),  # 1-fps centres: whole seconds
        ([0.5, 1.5, 4.0], [0, 1], [1] * 3, [(0.0, 2.75)]),  # halfway to a far neighbour
        ([0.0], [0], [1], [(0.0, 0.0)]),
        ([0, 1, 2], [], [1] * 3, []),
    ],
)
def test_spans_merge_consecutive_matched_frames(times, matched, passing, spans):
    got = frame_spans(np.array(times, float), np.array(matched, int), np.array(passing, bool))
    assert got == [(float(a), float(b)) for a, b in spans]


@pytest.mark.parametrize(
    "settings, match_text",
    [
        ({"distance": -1}, r"distance must be a whole number of bits from 0 to 256, got -1"),
        ({"distance": 2.5}, r"distance must be a whole number of bits"),
        ({"quality": 101}, r"quality must be a whole number from 0 to 100, got 101"),
        ({"bank_share": 0}, r"bank_share must be above 0 and at most 1, got 0"),
        ({"bank_share": 1.5}, r"bank_share must be above 0 and at most 1, got 1.5"),
    ],
)
def test_the_rule_refuses_settings_out_of_range(settings, match_text):
    with pytest.raises(UsageError, match=match_text):
        match(query(CLIP), bank(entry("clip", CLIP)), **settings)
