"""Train/val/test splits: hash-assigned, stratified by label, grouped, seeded, saved in the run.

The side of a video is decided by a seeded hash of its group (the labels file's `group` column,
e.g. the source video or the uploader; without one, the video id, so byte-identical files are
one unit): u = hash(seed, group) in [0, 1) goes to test below `test_fraction`, to val below
`test_fraction + val_fraction`, and to train above. A video's side therefore depends on nothing
but its own group and the seed: adding videos never moves one already assigned, and
`--split-from RUN` assigns new videos by the same rule.

Within each class the hash is uniform, so each side gets its fraction of every class on
average (stratified). Small sets need more: with 30 videos a 15 % test split may draw no
harmful video. So, per class, a side with none of that class takes the unit of the class whose
hash lies nearest its interval, from a side that has two or more (train first, then val, then
test); with several categories, the positives of each category are a class of their own.
Only sets that small are touched; `--split-from` keeps every existing assignment.

`Split` is a run's split record, and this module its one reader and writer: split.csv (the
sides) and config.json's "split" entry (where they came from, and the rule for new videos).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from harmcache.errors import DataError, UsageError
from harmcache.paths import shown
from harmcache.train.config import DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION, check_fractions
from harmcache.train.labels import SPLIT_VALUES, LabeledVideo

SPLIT_FILE = "split.csv"
SIDES = SPLIT_VALUES
HASH_VERSION = "harmcache-split/1"
"""Part of every hash: changing the rule changes the version, and so every assignment."""


def unit_of(video: LabeledVideo) -> str:
    """What is assigned as one: the video's group, or the video id when it has none."""
    return f"group:{video.group}" if video.group else video.video_id


def unit_hash(unit: str, seed: int) -> float:
    """A number in [0, 1) fixed by the unit and the seed alone."""
    digest = hashlib.sha256(f"{HASH_VERSION}:{seed}:{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def side_of(u: float, val_fraction: float, test_fraction: float) -> str:
    """The hash rule: [0, test) → test, [test, test + val) → val, the rest → train."""
    if u < test_fraction:
        return "test"
    return "val" if u < test_fraction + val_fraction else "train"


def stratified_split(
    videos: list[LabeledVideo],
    *,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = 0,
) -> dict[str, str]:
    """video id → train | val | test by the hash rule, every video of a group on one side,
    then the small-set repair (see the module docstring)."""
    check_fractions(val_fraction, test_fraction)
    units: dict[str, list[LabeledVideo]] = {}
    for v in videos:
        units.setdefault(unit_of(v), []).append(v)
    u = {name: unit_hash(name, seed) for name in units}
    side = {name: side_of(u[name], val_fraction, test_fraction) for name in units}
    # A group's class, for the repair: harmful if any of its videos is.
    label = {name: max(v.label for v in members) for name, members in units.items()}
    intervals = {
        "test": (0.0, test_fraction),
        "val": (test_fraction, test_fraction + val_fraction),
        "train": (test_fraction + val_fraction, 1.0),
    }
    wanted = ["train", "val"] + (["test"] if test_fraction > 0 else [])
    classes = [sorted(n for n in units if label[n] == cls) for cls in (0, 1)]
    # With several categories, each one's positives must reach every side too.
    n_categories = len(videos[0].targets) if videos else 1
    for k in range(n_categories if n_categories > 1 else 0):
        classes.append(sorted(n for n, vs in units.items() if any(v.targets[k] == 1 for v in vs)))
    for members in classes:
        for part in wanted:
            count = Counter(side[n] for n in members)
            if count[part]:
                continue
            donors = [n for n in members if side[n] != part and count[side[n]] >= 2]
            if not donors:
                continue
            lo, hi = intervals[part]
            nearest = min(donors, key=lambda n: (max(lo - u[n], u[n] - hi, 0.0), n))
            side[nearest] = part
    return {v.video_id: side[unit_of(v)] for v in videos}


def split_from_labels(videos: list[LabeledVideo]) -> dict[str, str] | None:
    """The split written in the labels file's `split` column, if it has one. A group may not
    straddle it."""
    if all(v.split is None for v in videos):
        return None
    seen: dict[str, tuple[str, str]] = {}
    for v in videos:
        if not v.group or v.split is None:
            continue
        first = seen.setdefault(v.group, (v.split, v.video_id))
        if first[0] != v.split:
            raise DataError(
                f"group {v.group!r} straddles the split column: {first[1][:12]} is in "
                f"{first[0]} and {v.video_id[:12]} in {v.split}; put a group on one side"
            )
    return {v.video_id: v.split for v in videos if v.split is not None}


@dataclass
class Split:
    """A run's split record: the side of each labelled video (written to split.csv), and where
    the sides came from with the rule that places videos added later (config.json's "split").

    `Split.make` takes the sides from one of three places: the labels file's split column,
    another run (`split_from`: its sides kept, its rule for the videos it lacks), or the hash
    rule."""

    assignment: dict[str, str]
    """video id → train | val | test"""
    record: dict
    """config.json's "split": source (labels | hash | run:DIR) and, when the sides follow the
    hash rule, the rule's version, seed and fractions"""
    notes: list[str] = field(default_factory=list)
    """What the user should know: videos assigned anew, a class the test split lacks."""
    new: Counter = field(default_factory=Counter)
    """With `split_from`: side → videos not in the other run, assigned by group or the rule"""
    new_by_group: int = 0
    """of those, videos that joined a group the other run had already placed"""

    @classmethod
    def make(
        cls,
        videos: list[LabeledVideo],
        *,
        split_from: str | Path | None = None,
        seed: int = 0,
        val_fraction: float = DEFAULT_VAL_FRACTION,
        test_fraction: float = DEFAULT_TEST_FRACTION,
    ) -> Split:
        """The split of `videos`, checked (training and validation need both classes)."""
        from_labels = split_from_labels(videos)
        if from_labels is not None:
            if split_from is not None:
                raise UsageError(
                    "the labels file has a split column; drop it or drop {param}",
                    parameter="split_from",
                )
            split = cls(from_labels, {"source": "labels"})
        elif split_from is not None:
            split = split_from_run(split_from, videos)
        else:
            assignment = stratified_split(
                videos, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
            )
            rule = {"rule": HASH_VERSION, "seed": seed, "val_fraction": val_fraction,
                    "test_fraction": test_fraction}  # fmt: skip
            split = cls(assignment, {"source": "hash", **rule})
        check_split(videos, split.assignment)
        split.notes += missing_classes(videos, split.assignment)
        return split

    def parts(self, videos: list[LabeledVideo]) -> dict[str, list[LabeledVideo]]:
        """train, val and test: the videos on each side, in the order given."""
        return {side: [v for v in videos if self.assignment[v.video_id] == side] for side in SIDES}

    def write(self, folder: Path, videos: list[LabeledVideo]) -> None:
        """split.csv in the run folder (the record goes into config.json with the rest)."""
        write_split(folder / SPLIT_FILE, videos, self.assignment)


def split_from_run(run_dir: str | Path, videos: list[LabeledVideo]) -> Split:
    """Another run's split for these videos. Videos it does not hold join their group's side
    if it placed the group, else the side the hash rule gives with its seed and fractions."""
    path = Path(run_dir) / SPLIT_FILE
    if not path.exists():
        raise UsageError(f"{{param}} {run_dir}: no {SPLIT_FILE} there", parameter="split_from")
    rows = read_split(path)
    assigned = {row["video_id"]: row["split"] for row in rows}
    by_group = {f"group:{row['group']}": row["split"] for row in rows if row.get("group")}
    rule = split_rule(run_dir)
    seed = int(rule.get("seed", 0))
    val_fraction = float(rule.get("val_fraction", DEFAULT_VAL_FRACTION))
    test_fraction = float(rule.get("test_fraction", DEFAULT_TEST_FRACTION))
    # A group's side: where the other run put any of its videos (by this labels file's groups).
    for v in videos:
        old = assigned.get(v.video_id)
        if old is None or not v.group:
            continue
        placed = by_group.setdefault(unit_of(v), old)
        if placed != old:
            raise DataError(
                f"--split-from {run_dir}: group {v.group!r} would straddle its split "
                f"({v.video_id[:12]} is in {old}, other videos of the group in {placed}); "
                "regroup, or train without --split-from"
            )
    out = Split({}, {**rule, "source": f"run:{Path(run_dir).resolve()}"})
    for v in videos:
        if v.video_id in assigned:
            out.assignment[v.video_id] = assigned[v.video_id]
            continue
        unit = unit_of(v)
        if unit in by_group:
            side = by_group[unit]
            out.new_by_group += 1
        else:
            side = side_of(unit_hash(unit, seed), val_fraction, test_fraction)
        out.assignment[v.video_id] = side
        out.new[side] += 1
    if out.new:
        sides = ", ".join(f"{side} {n}" for side, n in sorted(out.new.items()))
        grouped = f", {out.new_by_group} of them with their group" if out.new_by_group else ""
        out.notes.append(
            f"--split-from {run_dir}: {sum(out.new.values())} videos not in its split were "
            f"assigned by its rule ({sides}){grouped}"
        )
    return out


def split_rule(run_dir: str | Path) -> dict:
    """How a run's split was made (its config.json's "split", less the source), with the seed
    (older runs keep it at the top level); {} for a folder without config.json."""
    from harmcache.train.rundir import CONFIG_FILE  # the run directory imports this module

    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        return {}
    config = json.loads(path.read_text())
    rule = dict(config.get("split") or {})
    rule.setdefault("seed", config.get("seed", 0))
    rule.pop("source", None)
    return rule


def check_split(videos: list[LabeledVideo], assignment: dict[str, str]) -> None:
    """Training and validation each need both classes; a group stays on one side."""
    for part in ("train", "val"):
        counts = Counter(v.label for v in videos if assignment.get(v.video_id) == part)
        if len(counts) < 2:
            have = ", ".join(f"{n} labelled {k}" for k, n in sorted(counts.items())) or "no videos"
            total = Counter(v.label for v in videos)
            raise DataError(
                f"the {part} split needs both classes but has {have}; the labels hold "
                f"{total[1]} harmful and {total[0]} safe videos (each side needs at least one of "
                "each, so a class needs 2 or more, 3 with a test split); add labelled videos or "
                "change the split"
            )


def missing_classes(videos: list[LabeledVideo], assignment: dict[str, str]) -> list[str]:
    """Notes for a test split that lacks a class (its recall or precision cannot be measured)."""
    test = Counter(v.label for v in videos if assignment.get(v.video_id) == "test")
    if not sum(test.values()):
        return []
    return [
        f"the test split has no {name} videos: its {what} cannot be measured"
        for cls, name, what in ((1, "harmful", "recall"), (0, "safe", "false-positive rate"))
        if not test[cls]
    ]


def write_split(path: Path, videos: list[LabeledVideo], assignment: dict[str, str]) -> None:
    """One row per labelled path (in its readable form): video_id,path,label,split,group."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["video_id", "path", "label", "split", "group"])
        for v in videos:
            for p in v.paths:
                row = [v.video_id, shown(p), v.label, assignment[v.video_id], v.group or ""]
                writer.writerow(row)


def read_split(path: Path) -> list[dict]:
    """The rows of a split.csv (label as int; group '' when none, or in older runs)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row.get("split") not in SPLIT_VALUES:
            raise DataError(f"{path}: bad split value {row.get('split')!r}")
        row["label"] = int(row["label"])
        row["group"] = row.get("group") or ""
    return rows
