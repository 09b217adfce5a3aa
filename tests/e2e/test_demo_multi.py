"""The multi-category demo set (`demo-data --n-multi`): the files it writes, the planted overlaps
and blank cells of labels.csv, the taxonomy and policy beside them, clips that decode with their
cues in picture and sound, and a default set whose validation split can certify the policy."""

from __future__ import annotations

import csv
from itertools import combinations

import numpy as np
import pytest
import yaml

from harmcache.decisions.certify import certify
from harmcache.decisions.objective import Objective
from harmcache.demo_multi import (
    CATEGORIES,
    MIXES,
    N_MULTI,
    POLICY,
    make_multi_demo_set,
    multi_labels,
)
from harmcache.errors import UsageError
from harmcache.video.audio import read_audio
from harmcache.video.decode import VideoSource
from tests.running import invoke, ok

N = 2 * len(MIXES)
"""Every mix twice: enough training rows for blank cells, and each mix fully labelled once."""
HEADER = ["path", "fighting", "weapons", "gore", "screaming", "split"]


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = ok("demo-data", out, "--n-safe", "1", "--n-long", "0", "--n-multi", N)
    assert "wrote multi-category demo videos" in result.output
    return out / "multi"


def read_rows(folder) -> list[dict[str, str]]:
    with open(folder / "labels.csv", newline="") as f:
        return list(csv.DictReader(f))


def violence(row: dict[str, str]) -> str:
    """The parent's cell as the taxonomy derives it: 1 if a child is 1, 0 if both are 0, else
    blank (unknown)."""
    children = {row["fighting"], row["weapons"]}
    return "1" if "1" in children else "0" if children == {"0"} else ""


def test_writes_the_clips_labels_taxonomy_and_policy(multi):
    clips = [f"multi_{i:03d}.mp4" for i in range(N)]
    assert sorted(p.name for p in multi.iterdir()) == sorted(
        [*clips, "labels.csv", "policy.yaml", "taxonomy.yaml"]
    )
    with open(multi / "labels.csv", newline="") as f:
        assert next(csv.reader(f)) == HEADER  # no violence column: the taxonomy derives it
    assert [r["path"] for r in read_rows(multi)] == clips


def test_labels_plant_every_overlap_and_leave_training_cells_blank(multi):
    rows = read_rows(multi)
    assert {r[c] for r in rows for c in CATEGORIES} == {"0", "1", ""}
    full = [r for r in rows if all(r[c] for c in CATEGORIES)]
    carried = {frozenset(c for c in CATEGORIES if r[c] == "1") for r in full}
    every_subset = {frozenset(s) for k in range(5) for s in combinations(CATEGORIES, k)}
    assert carried == every_subset  # none, each alone, every overlap, all four
    blanks = [(r["split"], c) for r in rows for c in CATEGORIES if not r[c]]
    assert len(blanks) >= 3 and {split for split, _ in blanks} == {"train"}
    assert len({c for _, c in blanks}) == len(blanks)  # rotating over the categories
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    # A blank child leaves violence known when the other child is harmful.
    derived = [violence(r) for r in rows]
    assert {"0", "1"} <= set(derived)
    assert all(d == "1" for r, d in zip(rows, derived) if "1" in (r["fighting"], r["weapons"]))


def test_taxonomy_and_policy_parse(multi):
    taxonomy = yaml.safe_load((multi / "taxonomy.yaml").read_text())
    assert taxonomy == {"violence": ["fighting", "weapons"]}
    policy = yaml.safe_load((multi / "policy.yaml").read_text())
    assert policy["confidence"] == 0.9 and policy["review_budget"] == 0.6
    assert policy["categories"] == {
        "violence": {"remove": "precision>=0.7", "review": "recall>=0.8"},
        "gore": {"review": "recall>=0.75"},
    }
    for actions in policy["categories"].values():
        for text in actions.values():
            assert Objective.parse(text).certifiable().text == text


def cue_shares(frames: np.ndarray) -> dict[str, float]:
    """Per cue, the share of a frame's pixels that show it, the median over the clip (a
    fighting block may hide the blade for a frame)."""
    r, g, b = (frames[..., k].astype(int) for k in range(3))
    shown = {
        "fighting": (r > 220) & (g > 220) & (b > 220),  # the white blocks
        "weapons": (r < 100) & (g > 170) & (b < 120),  # the blade's green stripes
        "gore": (r > 110) & (g < 70) & (b < 80),  # the red pools
    }
    return {cue: float(np.median(mask.mean(axis=(1, 2)))) for cue, mask in shown.items()}


def test_clips_decode_with_their_cues_in_picture_and_sound(multi):
    for i, row in enumerate(read_rows(multi)[: len(MIXES)]):
        mix, path = MIXES[i], multi / row["path"]
        with VideoSource(path) as video:
            frames = video.read(np.arange(video.info.n_frames))
            duration = video.info.duration
        assert frames.shape[1:] == (72, 96, 3) and 16 <= len(frames) <= 32
        for cue, share in cue_shares(frames).items():
            if cue in mix:
                assert share > 0.02, (path.name, cue, share)
            else:
                assert share < 0.005, (path.name, cue, share)
        loudness = float(np.abs(np.concatenate(list(read_audio(path, end=duration)))).mean())
        assert (loudness > 0.2) == ("screaming" in mix), (path.name, loudness)
        fighting_flickers = frames.mean(axis=(1, 2, 3)).std() > 10
        assert fighting_flickers == ("fighting" in mix), path.name


def test_the_default_set_can_certify_the_policy_with_separating_scores():
    """With a head whose scores separate the classes, every target of policy.yaml is
    certified on the default set's validation split, even with the policy's confidence split
    over its targets."""
    rows = [dict(zip(HEADER, r)) for r in multi_labels(N_MULTI)]
    for r in rows:
        r["violence"] = violence(r)
    policy = yaml.safe_load(POLICY)
    targets = [(c, t) for c, actions in policy["categories"].items() for t in actions.values()]
    confidence = 1 - (1 - policy["confidence"]) / len(targets)
    for category, objective in targets:
        y = np.array([int(r[category]) for r in rows if r["split"] == "val" and r[category]])
        scores = np.where(y == 1, 0.99, 0.01)
        cert = certify(y, scores, objective, confidence=confidence)
        assert cert.certified, (category, objective, cert.reason)


def test_a_negative_count_is_refused_before_anything_is_written(tmp_path):
    result = invoke("demo-data", tmp_path / "demo", "--n-multi", "-1")
    assert result.exit_code == 2
    assert "--n-multi must be 0 or more, got -1" in result.output
    assert not (tmp_path / "demo").exists()


def test_the_library_refuses_an_empty_set_and_a_file_in_the_way(tmp_path):
    with pytest.raises(UsageError, match="--n-multi must be at least 1, got 0"):
        make_multi_demo_set(tmp_path / "empty", n_videos=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="cannot write the multi-category demo set .*directory"):
        make_multi_demo_set(tmp_path / "file" / "sub", n_videos=1)
