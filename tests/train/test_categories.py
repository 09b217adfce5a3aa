"""Labels with categories: one 0/1 column each, blank cells masked, parents derived from a
taxonomy, and the refusals that name the rows."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from harmcache.errors import DataError, UsageError
from harmcache.train.categories import HARMFUL, Taxonomy
from harmcache.train.labels import match_labels, read_label_set, targets_of
from tests.synthetic_cache import build


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_a_label_column_is_the_one_category_harmful(tmp_path):
    labels = write_csv(tmp_path / "l.csv", ["path", "label"], [["a.mp4", 1], ["b.mp4", 0]])
    got = read_label_set(labels)
    assert got.categories == [HARMFUL]
    assert [r.targets for r in got.rows] == [(1.0,), (0.0,)]
    assert [r.label for r in got.rows] == [1, 0]


def test_category_columns_with_blank_cells_are_not_labelled(tmp_path):
    labels = write_csv(
        tmp_path / "l.csv",
        ["path", "violence", "gore", "split"],
        [["a.mp4", 1, "", "train"], ["b.mp4", "", 0, "val"], ["c.mp4", 0, 1, "test"]],
    )
    got = read_label_set(labels)
    assert got.categories == ["violence", "gore"]
    a, b, c = (r.targets for r in got.rows)
    assert a[0] == 1 and math.isnan(a[1])
    assert math.isnan(b[0]) and b[1] == 0
    assert c == (0.0, 1.0)
    # The one bit: harmful in some category it is labelled in.
    assert [r.label for r in got.rows] == [1, 0, 1]
    assert [r.split for r in got.rows] == ["train", "val", "test"]


def test_a_row_blank_in_every_category_is_left_out(tmp_path):
    labels = write_csv(tmp_path / "l.csv", ["path", "a", "b"], [["x.mp4", "", ""], ["y", 1, 0]])
    assert [r.key for r in read_label_set(labels).rows] == ["y"]


@pytest.mark.parametrize(
    ("cell", "match"), [("2", "a must be 0, 1 or blank"), ("yes", "a must be 0, 1 or blank")]
)
def test_a_category_cell_must_be_binary(tmp_path, cell, match):
    labels = write_csv(tmp_path / "l.csv", ["path", "a"], [["x.mp4", cell]])
    with pytest.raises(DataError, match=match):
        read_label_set(labels)


def test_positive_names_apply_to_a_label_column_only(tmp_path):
    labels = write_csv(tmp_path / "l.csv", ["path", "a", "b"], [["x", 1, 0]])
    with pytest.raises(UsageError, match="--positive names the harmful values"):
        read_label_set(labels, positive=["violence"])


def test_taxonomy_derives_a_missing_parent(tmp_path):
    labels = write_csv(
        tmp_path / "l.csv",
        ["path", "fighting", "weapons", "gore"],
        [["a", 1, 0, 0], ["b", 0, 0, 1], ["c", "", 0, 0], ["d", "", 1, 0]],
    )
    taxonomy = Taxonomy.parse({"violence": ["fighting", "weapons"]})
    got = read_label_set(labels, taxonomy=taxonomy)
    assert got.categories == ["violence", "fighting", "weapons", "gore"]
    parent = [r.targets[0] for r in got.rows]
    # Positive iff a child is; negative iff every child says no; else not labelled.
    assert parent[0] == 1 and parent[1] == 0 and math.isnan(parent[2]) and parent[3] == 1


def test_a_nested_taxonomy_derives_bottom_up(tmp_path):
    labels = write_csv(tmp_path / "l.csv", ["path", "punch", "knife"], [["a", 1, 0], ["b", 0, 0]])
    taxonomy = Taxonomy.parse({"violence": ["fighting", "knife"], "fighting": ["punch"]})
    got = read_label_set(labels, taxonomy=taxonomy)
    table = dict(zip(got.categories, zip(*[r.targets for r in got.rows])))
    assert table["fighting"] == (1.0, 0.0) and table["violence"] == (1.0, 0.0)


def test_a_parent_0_beside_a_positive_child_names_the_rows(tmp_path):
    labels = write_csv(
        tmp_path / "l.csv",
        ["path", "violence", "fighting", "weapons"],
        [["a", 1, 1, 0], ["b", 0, 0, 1], ["c", "", 1, 0]],
    )
    taxonomy = Taxonomy.parse({"violence": ["fighting", "weapons"]})
    with pytest.raises(
        DataError, match=r"1 rows label violence 0 beside a positive child.*l\.csv:3"
    ):
        read_label_set(labels, taxonomy=taxonomy)


def test_a_blank_parent_takes_what_its_children_say(tmp_path):
    labels = write_csv(
        tmp_path / "l.csv", ["path", "violence", "fighting"], [["a", "", 1], ["b", 1, 0]]
    )
    got = read_label_set(labels, taxonomy=Taxonomy.parse({"violence": ["fighting"]}))
    assert [r.targets[0] for r in got.rows] == [1.0, 1.0]


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"violence": "fighting"}, "must list its children"),
        ([], "expected a mapping"),
        ({"a": ["b"], "b": ["a"]}, "is a cycle"),
    ],
)
def test_bad_taxonomies_are_refused(raw, match):
    with pytest.raises(UsageError, match=match):
        Taxonomy.parse(raw)


def test_a_taxonomy_child_without_a_column_is_refused(tmp_path):
    labels = write_csv(tmp_path / "l.csv", ["path", "fighting"], [["a", 1]])
    with pytest.raises(DataError, match="names weapons but the labels have no such column"):
        read_label_set(labels, taxonomy=Taxonomy.parse({"violence": ["fighting", "weapons"]}))


def test_taxonomy_read_from_yaml(tmp_path):
    path = tmp_path / "taxonomy.yaml"
    path.write_text("violence: [fighting, weapons]\n")
    assert Taxonomy.read(path).children == {"violence": ("fighting", "weapons")}
    with pytest.raises(UsageError, match=r"taxonomy .*nope\.yaml: no such file"):
        Taxonomy.read(tmp_path / "nope.yaml")
    (tmp_path / "broken.yaml").write_text("violence: [fighting\n")
    with pytest.raises(UsageError, match=r"broken\.yaml:2: not valid YAML"):
        Taxonomy.read(tmp_path / "broken.yaml")


def test_the_join_counts_each_category(tmp_path):
    syn = build(tmp_path, 12, categories={"a": 0.5, "b": 0.3})
    label_set = read_label_set(syn.labels_csv)
    joined = match_labels(label_set.rows, syn.cache, label_set.categories)
    counts = joined.report.categories
    assert counts["a"].positive == int(syn.targets[:, 0].sum())
    assert counts["b"].negative == int((syn.targets[:, 1] == 0).sum())
    assert targets_of(joined.videos).shape == (12, 2)
    assert any(line.startswith("  a: ") for line in joined.report.lines())
    assert joined.report.to_json()["categories"]["b"]["positive"] == int(syn.targets[:, 1].sum())


def test_duplicate_bytes_must_agree_in_every_category(tmp_path):
    syn = build(tmp_path, 4, categories={"a": 0.5, "b": 0.5})
    other = str(tmp_path / "copy.mp4")
    syn.cache.record_sources([(other, syn.ids[0])])
    a, b = syn.targets[0].tolist()
    labels = write_csv(
        tmp_path / "l.csv", ["path", "a", "b"], [[syn.paths[0], a, b], [other, a, 1 - b]]
    )
    label_set = read_label_set(labels)
    with pytest.raises(DataError, match="same video .* with different labels"):
        match_labels(label_set.rows, syn.cache, label_set.categories)
    np.testing.assert_array_equal(syn.targets.shape, (4, 2))
