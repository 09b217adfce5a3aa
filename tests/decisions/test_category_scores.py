"""Per-category scores read and write one CSV format; a blank label is masked, never a 0, and a
bad cell is refused with its file and line."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harmcache.decisions.category_scores import CATEGORY_SCORES_FILE, POLICY_FILE, CategoryScores
from harmcache.errors import DataError, UsageError

CSV = (
    "path,violence,violence_score,weapons,weapons_score,gore_score,split\n"
    "a.mp4,1,0.9,,0.4,0.2,val\n"
    "b.mp4,0,0.1,0,0.05,0.7,val\n"
    "\n"
    "c.mp4,,0.8,1.0,0.95,0.1,val\n"
)


IN_RANGE = r"v_score must be a number in \[0, 1\]"


def write(tmp_path, text: str, name: str = "scores.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_run_files_are_named_once():
    assert (CATEGORY_SCORES_FILE, POLICY_FILE) == ("val_category_scores.csv", "policy.json")


def test_reads_categories_labels_and_scores_with_blanks_masked(tmp_path):
    data = CategoryScores.read_csv(write(tmp_path, CSV))
    assert data.categories == ["violence", "weapons", "gore"]
    assert data.ids == ["a.mp4", "b.mp4", "c.mp4"] and data.id_column == "path"
    np.testing.assert_array_equal(data.scores[:, 0], [0.9, 0.1, 0.8])
    violence = data.labels[:, 0]
    assert violence[:2].tolist() == [1.0, 0.0] and math.isnan(violence[2])
    assert np.isnan(data.labels[:, 2]).all()  # a score column without its label column
    y, s = data.labelled("violence")
    assert y.tolist() == [1, 0] and s.tolist() == [0.9, 0.1]
    y, s = data.labelled("weapons")
    assert y.tolist() == [0, 1] and s.tolist() == [0.05, 0.95]
    assert data.labelled("gore")[0].size == 0
    assert data.column("gore").tolist() == [0.2, 0.7, 0.1]


def test_a_video_id_column_names_the_rows(tmp_path):
    data = CategoryScores.read_csv(write(tmp_path, "video_id,x,x_score\nv1,1,0.5\nv2,0,0.25\n"))
    assert data.ids == ["v1", "v2"] and data.id_column == "video_id"


def test_write_then_read_gives_the_same_table(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (50, 3)).astype(float)
    labels[rng.random((50, 3)) < 0.3] = np.nan
    data = CategoryScores(["a", "b", "c"], [f"v{i}.mp4" for i in range(50)], labels,
                          rng.random((50, 3)))  # fmt: skip
    path = tmp_path / CATEGORY_SCORES_FILE
    data.write_csv(path)
    back = CategoryScores.read_csv(path)
    assert back.categories == data.categories and back.ids == data.ids
    np.testing.assert_array_equal(back.scores, data.scores)  # repr: exact
    np.testing.assert_array_equal(np.isnan(back.labels), np.isnan(data.labels))
    np.testing.assert_array_equal(np.nan_to_num(back.labels, nan=-1), np.nan_to_num(labels, nan=-1))
    assert [p.name for p in tmp_path.iterdir()] == [CATEGORY_SCORES_FILE]  # no temporary left


@pytest.mark.parametrize(
    "text, message",
    [
        ("path,v,v_score\na,2,0.5\n",
         r"scores\.csv:2: the v label must be 1, 0 or blank \(not labelled\), got '2'"),
        ("path,v,v_score\na,1,0.5\nb,yes,0.5\n", r"scores\.csv:3: the v label must be 1, 0 or"),
        ("path,v,v_score\na,1,1.5\n", rf"scores\.csv:2: {IN_RANGE}, got '1.5'"),
        ("path,v,v_score\na,1,-0.1\n", rf"scores\.csv:2: {IN_RANGE}, got '-0.1'"),
        ("path,v,v_score\na,1,high\n", rf"scores\.csv:2: {IN_RANGE}, got 'high'"),
        ("path,v,v_score\na,1,nan\n", rf"scores\.csv:2: {IN_RANGE}, got 'nan'"),
        ("path,v,v_score\na,1,\n", rf"scores\.csv:2: {IN_RANGE}, got ''"),
        ("name,v,v_score\na,1,0.5\n",
         r"scores\.csv: needs a path or video_id column; found: name, v, v_score"),
        ("path,v\na,1\n", r"scores\.csv: no category: give each category C a score column C_score"),
        ("path,v,v_score\n", r"scores\.csv: no rows"),
        ("path,v,v_score\na,1,0.5\na,0,0.2\n", r"scores\.csv:3: a is already on line 2"),
        ("path,v,v_score\n,1,0.5\n", r"scores\.csv:2: the path is empty"),
    ],
)  # fmt: skip
def test_bad_files_name_the_line(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        CategoryScores.read_csv(write(tmp_path, text))


def test_a_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match=r"nope\.csv: no such file"):
        CategoryScores.read_csv(tmp_path / "nope.csv")


def test_an_unknown_category_names_those_there_are(tmp_path):
    data = CategoryScores.read_csv(write(tmp_path, CSV))
    message = r"no scores for category 'drugs' \(no drugs_score column\); the scores hold: violence"
    with pytest.raises(DataError, match=message):
        data.labelled("drugs")


def test_shapes_must_agree():
    with pytest.raises(DataError, match=r"2 videos and 1 categories but labels of shape \(3,\)"):
        CategoryScores(["a"], ["x", "y"], np.zeros(3), np.zeros(3))
    with pytest.raises(DataError, match=r"a category is named twice in a, a"):
        CategoryScores(["a", "a"], ["x"], np.zeros((1, 2)), np.zeros((1, 2)))
