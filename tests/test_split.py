"""Stratified, seeded, grouped splits, saved and reused."""

from __future__ import annotations

import pytest

from harmcache.errors import DataError, UsageError
from harmcache.train.labels import LabeledVideo
from harmcache.train.split import (
    check_split,
    read_split,
    split_from_run,
    stratified_split,
    write_split,
)


def videos(n_pos=20, n_neg=50):
    return [
        LabeledVideo(f"{i:064x}", int(i < n_pos), [f"/v/{i}.mp4"]) for i in range(n_pos + n_neg)
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stratified_and_seeded(seed):
    vs = videos()
    a = stratified_split(vs, val_fraction=0.2, test_fraction=0.1, seed=seed)
    assert a == stratified_split(list(reversed(vs)), val_fraction=0.2, test_fraction=0.1, seed=seed)
    for label, n in ((1, 20), (0, 50)):
        parts = [a[v.video_id] for v in vs if v.label == label]
        assert parts.count("val") == round(n * 0.2)
        assert parts.count("test") >= 1
    assert a != stratified_split(vs, val_fraction=0.2, seed=seed + 10)


def test_small_classes_still_reach_validation():
    a = stratified_split(videos(n_pos=2, n_neg=3), val_fraction=0.1)
    check_split(videos(n_pos=2, n_neg=3), a)


def test_bad_fractions():
    with pytest.raises(UsageError, match=r"--val-fraction"):
        stratified_split(videos(), val_fraction=0.7, test_fraction=0.4)


def test_grouped_by_video_id(tmp_path):
    # Two paths with the same bytes are one LabeledVideo: both rows get the same split.
    vs = videos()
    vs[0].paths.append("/elsewhere/copy.mp4")
    a = stratified_split(vs)
    write_split(tmp_path / "split.csv", vs, a)
    rows = read_split(tmp_path / "split.csv")
    assert len(rows) == len(vs) + 1
    assert len({r["split"] for r in rows if r["video_id"] == vs[0].video_id}) == 1


def test_split_from_run(tmp_path):
    vs = videos()
    a = stratified_split(vs, seed=3)
    write_split(tmp_path / "split.csv", vs, a)
    assert split_from_run(tmp_path, vs) == a
    extra = vs + [LabeledVideo("f" * 64, 1, ["/new.mp4"])]
    with pytest.raises(DataError, match=r"1 of the labelled videos are not in its split"):
        split_from_run(tmp_path, extra)
    with pytest.raises(UsageError, match=r"no split.csv there"):
        split_from_run(tmp_path / "nothing", vs)


def test_validation_needs_both_classes():
    vs = videos(n_pos=3, n_neg=3)
    a = {v.video_id: "train" for v in vs}
    a[vs[0].video_id] = "val"
    with pytest.raises(DataError, match=r"the val split needs both classes but has 1 labelled 1"):
        check_split(vs, a)
