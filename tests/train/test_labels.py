"""Reading labels and joining them to the cache: counts, keys, and every refusal."""

from __future__ import annotations

import csv
import os

import pytest

from harmcache.errors import DataError, UsageError
from harmcache.train.labels import check_classes, join_labels, read_labels
from tests.synthetic_cache import build


def write_csv(path, rows, header=("path", "label")):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def syn(tmp_path):
    return build(tmp_path, 12)


def test_join_by_absolute_path_reports_counts(syn, tmp_path):
    rows = [(p, y) for p, y in zip(syn.paths[:10], syn.labels[:10])]
    rows.append((str(tmp_path / "not-extracted.mp4"), 1))
    labels = write_csv(tmp_path / "l.csv", rows)
    videos, report = join_labels(read_labels(labels), syn.cache)
    assert report.label_rows == 11
    assert report.matched_rows == 10 and report.matched_videos == 10
    assert report.unmatched_rows == 1 and report.unmatched_examples == [rows[-1][0]]
    assert report.unlabelled_cached == 2
    assert {v.video_id for v in videos} == set(syn.ids[:10])
    assert any("labels with no cached video: 1" in line for line in report.lines())


def test_join_by_relative_path_and_by_video_id(syn, tmp_path):
    rel = os.path.relpath(syn.paths[0], tmp_path)
    labels = write_csv(tmp_path / "l.csv", [(rel, 1), (syn.ids[1].upper(), 0)])
    videos, report = join_labels(read_labels(labels), syn.cache)
    assert [v.video_id for v in videos] == sorted(syn.ids[:2])
    assert report.matched_rows == 2


def test_duplicate_bytes_are_one_video(syn, tmp_path):
    other = str(tmp_path / "copy-of-0.mp4")
    syn.cache.record_sources([(other, syn.ids[0])])
    labels = write_csv(tmp_path / "l.csv", [(syn.paths[0], 1), (other, 1)])
    videos, report = join_labels(read_labels(labels), syn.cache)
    assert len(videos) == 1 and sorted(videos[0].paths) == sorted([syn.paths[0], other])
    assert report.duplicate_rows == 1


def test_duplicate_bytes_with_different_labels_are_refused(syn, tmp_path):
    other = str(tmp_path / "copy-of-0.mp4")
    syn.cache.record_sources([(other, syn.ids[0])])
    labels = write_csv(tmp_path / "l.csv", [(syn.paths[0], 1), (other, 0)])
    with pytest.raises(DataError, match=r"same video .* with different labels"):
        join_labels(read_labels(labels), syn.cache)


def test_zero_matches_shows_both_sides(syn, tmp_path):
    labels = write_csv(tmp_path / "l.csv", [("RWF-2000/V_123_0.0_4.0.mp4", 1), ("V_9.mp4", 0)])
    with pytest.raises(DataError, match=r"0 of 2 labels matched a cached video") as info:
        join_labels(read_labels(labels), syn.cache)
    message = str(info.value)
    assert "'RWF-2000/V_123_0.0_4.0.mp4'" in message
    assert sorted(syn.paths)[0] in message


def test_one_class_is_refused(syn, tmp_path):
    labels = write_csv(tmp_path / "l.csv", [(p, 1) for p in syn.paths[:3]])
    videos, _ = join_labels(read_labels(labels), syn.cache)
    with pytest.raises(DataError, match=r"all 3 matched videos are labelled harmful \(1\)"):
        check_classes(videos)


def test_label_names_need_positive(tmp_path):
    labels = write_csv(tmp_path / "l.csv", [("a.mp4", "violence"), ("b.mp4", "normal")])
    with pytest.raises(DataError, match=r"label 'violence' is not 0/1; pass --positive"):
        read_labels(labels)
    rows = read_labels(labels, positive=["Violence", "harmful"])
    assert [r.label for r in rows] == [1, 0]
    with pytest.raises(DataError, match=r"none of the labels is one of --positive"):
        read_labels(labels, positive=["gore"])


def test_csv_without_label_column(tmp_path):
    labels = write_csv(tmp_path / "l.csv", [("a.mp4", "x")], header=("file", "class"))
    with pytest.raises(DataError, match=r"class must be 0, 1 or blank.*call the column label"):
        read_labels(labels)
    labels = write_csv(tmp_path / "l.csv", [("x",)], header=("file",))
    with pytest.raises(DataError, match=r"needs a header with columns path,label"):
        read_labels(labels)


def test_missing_labels_file(tmp_path):
    with pytest.raises(UsageError, match=r"labels not found"):
        read_labels(tmp_path / "nope.csv")


def test_folder_of_class_folders(syn, tmp_path):
    root = tmp_path / "by_class"
    for name in ("violence", "normal"):
        (root / name).mkdir(parents=True)
    a, b = root / "violence" / "a.mp4", root / "normal" / "b.mp4"
    for p in (a, b):
        p.write_bytes(b"x")
    (root / "normal" / "notes.txt").write_text("not a video")
    syn.cache.record_sources([(str(a), syn.ids[0]), (str(b), syn.ids[1])])
    rows = read_labels(root, positive=["violence"])
    assert sorted((os.path.basename(r.key), r.label) for r in rows) == [("a.mp4", 1), ("b.mp4", 0)]
    videos, _ = join_labels(rows, syn.cache)
    assert {v.video_id: v.label for v in videos} == {syn.ids[0]: 1, syn.ids[1]: 0}


def test_split_column(tmp_path):
    rows = [("a.mp4", 1, "train"), ("b.mp4", 0, "val")]
    labels = write_csv(tmp_path / "l.csv", rows, header=("path", "label", "split"))
    assert [r.split for r in read_labels(labels)] == ["train", "val"]
    bad = write_csv(
        tmp_path / "b.csv", [("a.mp4", 1, "holdout")], header=("path", "label", "split")
    )
    with pytest.raises(DataError, match=r"split must be train, val or test, got 'holdout'"):
        read_labels(bad)
    partial = write_csv(
        tmp_path / "p.csv",
        [("a.mp4", 1, "train"), ("b.mp4", 0, "")],
        header=("path", "label", "split"),
    )
    with pytest.raises(DataError, match=r"the split column is empty in 1 rows"):
        read_labels(partial)
