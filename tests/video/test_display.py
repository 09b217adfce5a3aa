"""The display transform (harmcache/video/display.py) and how it is recorded in the cache."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import h5py
import numpy as np
import pytest
from harmcache.cli.main import app
from typer.testing import CliRunner

from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.types import VideoInfo
from harmcache.video.display import UPRIGHT, Display
from tests.store.test_cache import item, spec

ONE = 1 << 16


@pytest.mark.parametrize(
    ("matrix", "turns", "hflip"),
    [
        ([ONE, 0, 0, 0, ONE, 0, 0, 0, 1 << 30], 0, False),
        ([0, ONE, 0, -ONE, 0, 0, 0, 0, 1 << 30], 1, False),  # what a phone's portrait video holds
        ([-ONE, 0, 0, 0, -ONE, 0, 0, 0, 1 << 30], 2, False),
        ([0, -ONE, 0, ONE, 0, 0, 0, 0, 1 << 30], 3, False),
        ([-ONE, 0, 0, 0, ONE, 0, 0, 0, 1 << 30], 0, True),
        ([ONE, 0, 0, 0, -ONE, 0, 0, 0, 1 << 30], 2, True),  # a vertical flip
        ([0, ONE, 0, ONE, 0, 0, 0, 0, 1 << 30], 1, True),  # a transpose
    ],
)
def test_matrix_to_turns_and_mirror(matrix, turns, hflip):
    display = Display.from_matrix(np.array(matrix, dtype=np.int32))
    assert (display.quarter_turns, display.hflip) == (turns, hflip)
    assert Display.parse(display.label) == display


def test_near_quarter_turn_snaps_and_no_matrix_is_coded():
    tilted = np.array([-3000, ONE, 0, -ONE, -3000, 0, 0, 0, 1 << 30], dtype=np.int32)
    assert Display.from_matrix(tilted).quarter_turns == 1
    assert Display.from_matrix(None) == Display()
    assert Display().label == UPRIGHT and Display.parse("") == Display()


def test_apply_turns_mirrors_and_squares_pixels():
    frame = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.testing.assert_array_equal(Display(1).apply(frame), np.rot90(frame, -1))
    np.testing.assert_array_equal(Display(0, True).apply(frame), frame[:, ::-1])
    assert Display(1).apply(frame).flags["C_CONTIGUOUS"]
    assert Display().apply(frame) is frame
    wide = Display(0, False, Fraction(16, 15))
    assert wide.size(720, 576) == (768, 576)
    assert wide.apply(np.zeros((576, 720, 3), np.uint8)).shape == (576, 768, 3)
    assert Display(1, False, Fraction(64, 45)).size(720, 576) == (576, 1024)
    assert Display.from_matrix(None, Fraction(0)).sar == 1  # unset aspect: square
    assert Display.from_matrix(None, Fraction(1000)).sar == 1  # absurd aspect: ignored


def test_labels_round_trip():
    for display in (
        Display(3, True, Fraction(64, 45)),
        Display(2),
        Display(0, False, Fraction(8, 9)),
    ):
        assert Display.parse(display.label) == display


def test_display_is_stored_and_an_older_shard_reads_as_unrecorded(tmp_path):
    fam = Family.from_spec(spec())
    portrait = replace(item("a" * 64).info, width=32, height=64, display="rotate_cw=90")
    videos = [replace(item("a" * 64), info=portrait), item("b" * 64)]
    videos[1] = replace(videos[1], info=replace(videos[1].info, display=UPRIGHT))
    with FeatureCache(tmp_path / "c", create=True) as cache:
        path = cache.commit(fam, videos)
        loaded = cache.load(fam)
        assert loaded["a" * 64].info.display == "rotate_cw=90"
        assert loaded["a" * 64].info == portrait
        assert cache.info()["families"][0]["backends"] == {
            "decord rotate_cw=90": 1,
            "decord upright": 1,
        }
    with h5py.File(path, "a") as f:  # a shard written before the column existed
        del f["videos/display"]
    with FeatureCache(tmp_path / "c") as cache:
        assert {v.info.display for v in cache.load(fam).values()} == {""}


def test_cache_info_flags_videos_cached_before_orientation_was_recorded(tmp_path):
    fam = Family.from_spec(spec())
    old = item("c" * 64)
    assert old.info.display == ""  # what every video cached before looks like
    new = replace(item("d" * 64), info=replace(old.info, display=UPRIGHT))
    with FeatureCache(tmp_path / "c", create=True) as cache:
        cache.commit(fam, [old, new])
    result = CliRunner().invoke(app, ["cache", "info", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "decoded by: decord 1, decord upright 1" in result.output
    assert "1 video(s) were cached before display orientation was recorded" in result.output


def test_decoded_by_names_the_transform():
    info = VideoInfo(10, 5.0, 2.0, 36, 64, "pyav", "rotate_cw=90")
    assert info.decoded_by == "pyav rotate_cw=90"
    assert replace(info, display="").decoded_by == "pyav"
