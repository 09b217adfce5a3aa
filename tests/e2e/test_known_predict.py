"""`predict --bank`: a known clip embedded in a longer upload is reported, with where it sits,
before the model's score; the PDQ hashes come from the same decode pass as the run's features,
with the default settings of every command."""

from __future__ import annotations

import csv

from tests.known.media import scene_video
from tests.running import last_json, ok, tiny_flags


def test_predict_reports_known_content_before_the_score(tmp_path):
    videos = tmp_path / "videos"
    clips = [scene_video(videos / f"c{i}.mp4", [20 * i + s for s in range(3)]) for i in range(10)]
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as f:
        csv.writer(f).writerows([["path", "label"], *[[c, i % 2] for i, c in enumerate(clips)]])
    cache = tmp_path / "cache"
    ok("extract", videos, "--out", cache, "--extractors", "clip", *tiny_flags())
    ok("train", "--cache", cache, "--labels", labels, "--head", "logreg", "--out", tmp_path / "run",
       "--val-fraction", "0.3", "--test-fraction", "0")  # fmt: skip
    bank = tmp_path / "bank"
    ok("bank", "add", bank, clips[3], "--label", "removed-before")
    # An upload: 2 s of other scenes, the known clip's 3 s, then 2 s more.
    upload = scene_video(tmp_path / "new" / "upload.mp4", [501, 502, 60, 61, 62, 503, 504])
    result = ok("predict", upload, clips[5], "--run", tmp_path / "run", "--bank", bank, "--json")
    first, other = last_json(result)["predictions"]
    (match,) = first["known"]
    assert match["label"] == "removed-before" and match["bank_share"] == 1.0
    (span,) = match["spans"]
    assert 1.5 <= span[0] <= 2.5 and 4.5 <= span[1] <= 5.5
    assert first["score"] is not None  # the model's score is still given
    assert other["known"] == []
    lines = result.output.splitlines()
    known = next(i for i, line in enumerate(lines) if "KNOWN removed-before" in line)
    assert "upload.mp4" in lines[known] and "upload.mp4" in lines[known + 1]
