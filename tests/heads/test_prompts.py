"""The prompts head: categories scored by CLIP text prompts against cached CLIP frames, through
the text tower of the weights that made the family. Random-init towers are unrelated, so the
planted cache here puts each positive video's frames near its category's prompt direction: a
head that compares and pools right finds them; one that does not, cannot."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from harmcache.errors import DataError, UsageError
from harmcache.extractors.base import FeatureRecord
from harmcache.extractors.clip_text import prompt_embeddings
from harmcache.prompting import prompt_settings, read_prompts
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.train.fit import train
from harmcache.train.rundir import load_run
from harmcache.types import VideoFeatures, VideoInfo
from tests.running import invoke, ok
from tests.synthetic_cache import spec, video_id

PROMPTS = {"fighting": ["two people fighting", "a punch"], "gore": ["a bloody wound"]}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """120 videos of 6 CLIP frames (real width, random-init spec); a positive video's frames
    in the middle lean toward its category's prompt direction."""
    root = tmp_path_factory.mktemp("prompts")
    text = prompt_embeddings(spec("clip"), PROMPTS)
    directions = {
        c: v.mean(axis=0) / np.linalg.norm(v.mean(axis=0)) for c, v in text.embeddings.items()
    }
    rng = np.random.default_rng(0)
    cache = FeatureCache(root / "cache", create=True)
    family = Family.from_spec(spec("clip"))
    items, rows = [], []
    for i in range(120):
        truth = {c: int(rng.random() < 0.35) for c in PROMPTS}
        frames = rng.normal(size=(6, 512)).astype(np.float32)
        for c, y in truth.items():
            if y:
                frames[2:4] += 1.5 * np.sqrt(512) * directions[c].astype(np.float32)
        stamps = np.arange(6) + 0.5
        record = FeatureRecord(frames, (stamps * 25).astype(np.int64), stamps)
        vid, path = video_id(f"p{i}"), str(root / f"p{i:03d}.mp4")
        items.append(
            VideoFeatures(vid, VideoInfo(150, 25.0, 6.0, 64, 32, "synthetic"), path, record)
        )
        rows.append([path, *truth.values()])
    cache.record_sources([(it.source_path, it.video_id) for it in items])
    cache.commit(family, items)
    labels = root / "labels.csv"
    with open(labels, "w", newline="") as f:
        csv.writer(f).writerows([["path", *PROMPTS], *rows])
    prompts = root / "prompts.yaml"
    prompts.write_text("gore: [a bloody wound]\nfighting: [two people fighting, a punch]\n")
    return root, labels, prompts


def test_prompts_find_frames_near_their_text(planted, tmp_path):
    root, labels, prompts = planted
    params = prompt_settings(root / "cache", prompts)
    assert list(params["text"]) == ["gore", "fighting"]  # the file's order ...
    result = train(root / "cache", labels, "prompts", tmp_path / "run", head_params=params)
    for name, m in result.metrics["categories"].items():
        assert m["test"]["auroc"] > 0.95, (name, m["test"])
    run = load_run(tmp_path / "run")
    assert run.head.categories == ["fighting", "gore"]  # ... aligned to the labels' order
    assert len(run.head.text["gore"][0]) == 512  # the text embeddings live in the run
    timelines = run.head.timelines(run.load_data(run.open_cache(), [video_id("p0")]), 1)
    assert len(timelines[0]) == 6


def test_the_command_line_path_warns_for_random_init(planted, tmp_path):
    root, labels, prompts = planted
    result = ok("train", "--cache", root / "cache", "--labels", labels, "--head", "prompts",
                "--prompts", prompts, "--out", tmp_path / "run")  # fmt: skip
    assert "random-init" in result.output and "carry no meaning" in result.output
    assert (tmp_path / "run" / "categories" / "gore" / "threshold.json").exists()
    bad = invoke("train", "--cache", root / "cache", "--labels", labels, "--head", "prompts",
                 "--out", tmp_path / "other")  # fmt: skip
    assert bad.exit_code != 0 and "--head prompts needs it" in bad.output


def test_text_from_other_weights_is_refused(planted, tmp_path):
    root, labels, prompts = planted
    params = prompt_settings(root / "cache", prompts)
    params["text_weights"] = {"kind": "random-init", "seed": 7}
    with pytest.raises(UsageError, match="come from other CLIP weights"):
        train(root / "cache", labels, "prompts", tmp_path / "run", head_params=params)


def test_prompts_must_cover_the_labelled_categories(planted, tmp_path):
    root, labels, _ = planted
    params = prompt_settings(root / "cache", {"gore": ["blood"]})
    with pytest.raises(UsageError, match="give each labelled category its prompts"):
        train(root / "cache", labels, "prompts", tmp_path / "run", head_params=params)


@pytest.mark.parametrize(
    ("text", "match"), [("[]", "expected a mapping"), ("gore: 3", "must list its prompts")]
)
def test_bad_prompt_files_are_refused(tmp_path, text, match):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=match):
        read_prompts(path)


def test_prompts_need_a_clip_family():
    with pytest.raises(UsageError, match="need a CLIP family"):
        prompt_embeddings({"extractor": "yolo", "weights": {}}, PROMPTS)
    from harmcache.heads.data import Modality, SequenceData
    from harmcache.heads.prompts import PromptHead

    head = PromptHead(text={"a": [[1.0, 0.0]], "b": [[0.0, 1.0]]})
    ones = np.ones((2, 2, 3), np.float32)
    clip = Modality(ones, np.ones((2, 2), bool), np.zeros((2, 2)), np.zeros((2, 2), np.float32))
    with pytest.raises(DataError, match="different models"):
        head.fit(SequenceData(["v", "w"], {"clip": clip}), np.array([[0, 1], [1, 0]]))
