"""Moderation categories: the label columns of a labels file, their hierarchy, and their counts.

A labels file names one category per 0/1 column (`path,violence,weapons,gore[,split][,group]`),
or one column `label`, read as the single category `harmful`. A blank cell is "not labelled":
it is masked in training and in every metric, never read as 0 (NaN in the arrays).

A taxonomy (`--taxonomy taxonomy.yaml`, `violence: [fighting, weapons]`) names parents and
children. A parent without a column is derived: positive iff a child is, negative iff every
child is labelled negative, else not labelled. A parent column that says 0 beside a positive
child is a data error that names the rows, since the model would learn two contradicting
things from one video.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harmcache.errors import DataError, UsageError
from harmcache.user_files import read_user_yaml

HARMFUL = "harmful"
"""The one category of a `path,label` file."""
NOT_LABELLED = math.nan


@dataclass(frozen=True)
class Taxonomy:
    """parent → its children, in the order the file gives them."""

    children: dict[str, tuple[str, ...]]

    @classmethod
    def read(cls, path: str | Path) -> Taxonomy:
        path = Path(path)
        return cls.parse(read_user_yaml(path, "taxonomy"), path.name)

    @classmethod
    def parse(cls, raw: object, where: str = "taxonomy") -> Taxonomy:
        if not isinstance(raw, dict) or not raw:
            raise UsageError(f"{where}: expected a mapping parent: [child, ...], got {raw!r}")
        children: dict[str, tuple[str, ...]] = {}
        for parent, kids in raw.items():
            if not isinstance(kids, list) or not kids or not all(isinstance(k, str) for k in kids):
                raise UsageError(
                    f"{where}: {parent!r} must list its children, e.g. {parent}: [a, b]; "
                    f"got {kids!r}"
                )
            children[str(parent).strip().lower()] = tuple(k.strip().lower() for k in kids)
        taxonomy = cls(children)
        taxonomy.order()  # a cycle fails here, before any label is read
        return taxonomy

    def order(self) -> list[str]:
        """Parents, each after all of its descendants that are parents too (derive bottom-up)."""
        done: list[str] = []
        visiting: set[str] = set()

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in done or name not in self.children:
                return
            if name in visiting:
                raise UsageError(f"taxonomy: {' -> '.join((*path, name))} is a cycle")
            visiting.add(name)
            for child in self.children[name]:
                visit(child, (*path, name))
            visiting.discard(name)
            done.append(name)

        for parent in self.children:
            visit(parent, ())
        return done

    def leaves(self) -> set[str]:
        kids = {k for ks in self.children.values() for k in ks}
        return kids - set(self.children)

    def to_json(self) -> dict[str, list[str]]:
        return {p: list(ks) for p, ks in self.children.items()}


def apply_taxonomy(
    categories: list[str], values: np.ndarray, where: list[str], taxonomy: Taxonomy
) -> tuple[list[str], np.ndarray]:
    """The label columns with every parent derived or checked against its children.

    `values` is (rows, categories) with NaN where not labelled; `where` names each row for
    messages. A derived parent is placed before its first child."""
    missing = sorted(taxonomy.leaves() - set(categories))
    if missing:
        raise DataError(
            f"the taxonomy names {', '.join(missing)} but the labels have no such column "
            f"(columns: {', '.join(categories)})"
        )
    categories = list(categories)
    for parent in taxonomy.order():
        idx = [categories.index(c) for c in taxonomy.children[parent]]
        kids = values[:, idx]
        any_positive = (kids == 1).any(axis=1)
        all_negative = (kids == 0).all(axis=1)
        derived = np.where(any_positive, 1.0, np.where(all_negative, 0.0, NOT_LABELLED))
        if parent in categories:
            column = values[:, categories.index(parent)]
            bad = np.flatnonzero((column == 0) & any_positive)
            if len(bad):
                rows = ", ".join(where[i] for i in bad[:5])
                raise DataError(
                    f"{len(bad)} rows label {parent} 0 beside a positive child "
                    f"({', '.join(taxonomy.children[parent])}): {rows}; a child implies its "
                    "parent, so fix the parent or the child"
                )
            # A blank parent beside labelled children takes what they say.
            values[:, categories.index(parent)] = np.where(np.isnan(column), derived, column)
            continue
        at = min(idx)
        categories.insert(at, parent)
        values = np.insert(values, at, derived, axis=1)
    return categories, values


def overall_label(targets: np.ndarray) -> int:
    """A video's one bit: harmful if any category it is labelled in says so."""
    return int(np.nanmax(targets) == 1) if not np.isnan(targets).all() else 0


@dataclass
class CategoryCounts:
    """Per category: labelled positives, labelled negatives and rows left blank."""

    positive: int
    negative: int
    not_labelled: int

    def to_json(self) -> dict[str, int]:
        return {
            "positive": self.positive,
            "negative": self.negative,
            "not_labelled": self.not_labelled,
        }


def count_categories(categories: list[str], targets: np.ndarray) -> dict[str, CategoryCounts]:
    """`targets`: (videos, categories) with NaN where not labelled."""
    return {
        name: CategoryCounts(
            int((targets[:, k] == 1).sum()),
            int((targets[:, k] == 0).sum()),
            int(np.isnan(targets[:, k]).sum()),
        )
        for k, name in enumerate(categories)
    }


def check_category_classes(categories: list[str], targets: np.ndarray) -> None:
    """Training needs both classes in every category."""
    for name, counts in count_categories(categories, targets).items():
        if not counts.positive or not counts.negative:
            have = f"{counts.positive} positive and {counts.negative} negative"
            raise DataError(
                f"category {name} has {have} labelled videos; training needs both classes in "
                "every category (drop the column, or label more videos)"
            )
