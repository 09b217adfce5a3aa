"""Hash-assigned, stratified, grouped, seeded splits: saved, reused, and stable as videos are
added."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from harmcache.errors import DataError, UsageError
from harmcache.train.labels import LabeledVideo
from harmcache.train.split import (
    HASH_VERSION,
    Split,
    check_split,
    missing_classes,
    read_split,
    split_from_labels,
    split_from_run,
    stratified_split,
    write_split,
)


def videos(n_pos=20, n_neg=50, start=0, groups=None):
    return [
        LabeledVideo(
            f"{i:064x}",
            int(i - start < n_pos),
            [f"/v/{i}.mp4"],
            group=groups(i) if groups else None,
        )
        for i in range(start, start + n_pos + n_neg)
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_seeded_and_independent_of_order(seed):
    vs = videos()
    a = stratified_split(vs, val_fraction=0.2, test_fraction=0.1, seed=seed)
    assert a == stratified_split(list(reversed(vs)), val_fraction=0.2, test_fraction=0.1, seed=seed)
    assert a != stratified_split(vs, val_fraction=0.2, test_fraction=0.1, seed=seed + 10)


@pytest.mark.parametrize("seed", [0, 1])
def test_each_class_gets_its_fractions_on_a_large_set(seed):
    vs = videos(n_pos=1000, n_neg=3000)
    a = stratified_split(vs, seed=seed)  # defaults: val 0.15, test 0.15
    for label, n in ((1, 1000), (0, 3000)):
        parts = Counter(a[v.video_id] for v in vs if v.label == label)
        assert abs(parts["val"] / n - 0.15) < 0.035 and abs(parts["test"] / n - 0.15) < 0.035


@pytest.mark.parametrize("seed", range(8))
def test_small_sets_get_every_class_on_every_side(seed):
    # 29 videos like the demo set: a 15 % test split would often draw no safe video by chance.
    vs = videos(n_pos=21, n_neg=8)
    a = stratified_split(vs, seed=seed)
    for part in ("train", "val", "test"):
        assert {v.label for v in vs if a[v.video_id] == part} == {0, 1}, (seed, part)
    check_split(vs, a)
    assert missing_classes(vs, a) == []


def test_a_class_too_small_to_share_is_a_clear_error():
    vs = videos(n_pos=1, n_neg=10)
    a = stratified_split(vs)
    with pytest.raises(DataError, match=r"split needs both classes but has .*; the labels hold 1 "):
        check_split(vs, a)


def test_adding_videos_moves_no_assigned_video():
    old = videos(n_pos=200, n_neg=600)
    new = old + videos(n_pos=50, n_neg=150, start=800)
    a, b = stratified_split(old, seed=4), stratified_split(new, seed=4)
    assert all(b[v] == side for v, side in a.items())


def test_changing_the_validation_share_keeps_the_test_set():
    vs = videos(n_pos=200, n_neg=600)
    a = stratified_split(vs, val_fraction=0.15)
    b = stratified_split(vs, val_fraction=0.25)
    assert {v for v, s in a.items() if s == "test"} == {v for v, s in b.items() if s == "test"}


def test_a_group_stays_on_one_side():
    vs = videos(n_pos=100, n_neg=300, groups=lambda i: f"source-{i // 5}")
    a = stratified_split(vs, seed=2)
    sides: dict[str, set] = {}
    for v in vs:
        sides.setdefault(v.group, set()).add(a[v.video_id])
    assert all(len(s) == 1 for s in sides.values())
    assert set().union(*sides.values()) == {"train", "val", "test"}


def test_bad_fractions():
    with pytest.raises(UsageError, match=r"the validation \(0.7\) and test \(0.4\) fractions"):
        stratified_split(videos(), val_fraction=0.7, test_fraction=0.4)
    with pytest.raises(UsageError, match=r"^val_fraction must be above 0 and below 1") as refused:
        stratified_split(videos(), val_fraction=0)
    assert refused.value.as_flag().startswith("--val-fraction must be above 0")


def test_grouped_by_video_id(tmp_path):
    # Two paths with the same bytes are one LabeledVideo: both rows get the same split.
    vs = videos()
    vs[0].paths.append("/elsewhere/copy.mp4")
    a = stratified_split(vs)
    write_split(tmp_path / "split.csv", vs, a)
    rows = read_split(tmp_path / "split.csv")
    assert len(rows) == len(vs) + 1
    assert len({r["split"] for r in rows if r["video_id"] == vs[0].video_id}) == 1


def _saved_run(tmp_path, vs, seed=3):
    a = stratified_split(vs, seed=seed)
    write_split(tmp_path / "split.csv", vs, a)
    split = {"seed": seed, "val_fraction": 0.15, "test_fraction": 0.15}
    (tmp_path / "config.json").write_text(json.dumps({"seed": seed, "split": split}))
    return a


def test_split_from_run_keeps_sides_and_assigns_new_videos_by_the_rule(tmp_path):
    vs = videos(n_pos=200, n_neg=600, groups=lambda i: f"g{i // 4}")
    a = _saved_run(tmp_path, vs)
    assert split_from_run(tmp_path, vs).assignment == a
    # New videos: one joins a group the run already placed, the others are new groups.
    joined = LabeledVideo("e" * 64, 1, ["/joined.mp4"], group="g0")
    fresh = videos(n_pos=20, n_neg=20, start=5000, groups=lambda i: f"h{i}")
    inherited = split_from_run(tmp_path, vs + [joined] + fresh)
    assert all(inherited.assignment[v] == side for v, side in a.items())
    assert inherited.assignment[joined.video_id] == a[vs[0].video_id]
    assert inherited.new_by_group == 1 and sum(inherited.new.values()) == 41
    # The same rule as a fresh split of everything would give the new groups.
    everything = stratified_split(vs + fresh, seed=3)
    assert all(inherited.assignment[v.video_id] == everything[v.video_id] for v in fresh)
    with pytest.raises(UsageError, match=r"no split.csv there"):
        split_from_run(tmp_path / "nothing", vs)


def test_split_from_run_refuses_a_group_that_would_straddle(tmp_path):
    vs = videos(n_pos=30, n_neg=90)
    a = _saved_run(tmp_path, vs)
    by_side = {side: next(v for v in vs if a[v.video_id] == side) for side in ("train", "val")}
    for v in by_side.values():
        v.group = "same-source"
    with pytest.raises(DataError, match=r"group 'same-source' would straddle its split"):
        split_from_run(tmp_path, vs)


def test_a_group_may_not_straddle_the_split_column():
    vs = videos(n_pos=2, n_neg=2)
    for v, side in zip(vs, ("train", "val", "train", "val")):
        v.split, v.group = side, "one"
    with pytest.raises(DataError, match=r"group 'one' straddles the split column"):
        split_from_labels(vs)


def test_validation_needs_both_classes():
    vs = videos(n_pos=3, n_neg=3)
    a = {v.video_id: "train" for v in vs}
    a[vs[0].video_id] = "val"
    with pytest.raises(DataError, match=r"the val split needs both classes but has 1 labelled 1"):
        check_split(vs, a)


def test_the_record_says_where_the_sides_came_from(tmp_path):
    vs = videos(n_pos=30, n_neg=90)
    made = Split.make(vs, seed=3, val_fraction=0.2, test_fraction=0.1)
    assert made.assignment == stratified_split(vs, seed=3, val_fraction=0.2, test_fraction=0.1)
    rule = {"rule": HASH_VERSION, "seed": 3, "val_fraction": 0.2, "test_fraction": 0.1}
    assert made.record == {"source": "hash", **rule}
    # A run that reuses it keeps its rule, so a third run assigns new videos the same way.
    made.write(tmp_path, vs)
    (tmp_path / "config.json").write_text(json.dumps({"seed": 3, "split": made.record}))
    reused = Split.make(vs, split_from=tmp_path)
    assert reused.assignment == made.assignment and reused.notes == []
    assert reused.record == {**rule, "source": f"run:{tmp_path.resolve()}"}
    fresh = videos(n_pos=5, n_neg=5, start=900)
    grown = Split.make(vs + fresh, split_from=tmp_path)
    again = stratified_split(vs + fresh, seed=3, val_fraction=0.2, test_fraction=0.1)
    assert all(grown.assignment[v.video_id] == again[v.video_id] for v in fresh)
    assert grown.notes[0].startswith(f"--split-from {tmp_path}: 10 videos not in its split")


def test_a_split_column_and_split_from_exclude_each_other(tmp_path):
    vs = videos(n_pos=4, n_neg=4)
    for i, v in enumerate(vs):
        v.split = ("train", "val")[i % 2]
    assert Split.make(vs).record == {"source": "labels"}
    with pytest.raises(UsageError, match=r"split column; drop it or drop split_from$") as refused:
        Split.make(vs, split_from=tmp_path)
    assert refused.value.as_flag().endswith("drop it or drop --split-from")


def test_parts_keep_the_given_order():
    vs = videos(n_pos=30, n_neg=90)
    split = Split.make(vs)
    parts = split.parts(vs)
    assert sum(len(p) for p in parts.values()) == len(vs)
    for side, part in parts.items():
        assert part == [v for v in vs if split.assignment[v.video_id] == side]
