"""Still images beside videos: found in folders, decoded upright by Pillow, one row for CLIP and
YOLO and no SlowFast window (masked, never a failure), trained on alone or mixed with videos,
and scored by `predict` as one instant. Hostile images are in tests/cli/test_extract.py."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harmcache.demo import make_demo_set, make_image_demo_set
from harmcache.errors import VideoError
from harmcache.store.cache import FeatureCache
from harmcache.video.decode import VideoSource
from harmcache.video.intake import expand_inputs
from tests.running import tiny_flags

HARMCACHE = Path(sys.executable).with_name("harmcache")
SMALL = tiny_flags(frames=4)


def harmcache(*args) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [str(HARMCACHE), *map(str, args)], capture_output=True, text=True, timeout=900
    )
    assert "Traceback" not in run.stderr, run.stderr
    return run


def test_folders_yield_images_beside_videos_in_any_letter_case(tmp_path):
    for name in ("a.mp4", "b.JPG", "c.jpeg", "d.png", "e.webp", "f.BMP", "g.txt", ".h/i.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    found = [p.name for p in expand_inputs([tmp_path])]
    assert found == ["a.mp4", "b.JPG", "c.jpeg", "d.png", "e.webp", "f.BMP"]


def test_an_image_is_a_one_frame_item_decoded_upright(tmp_path):
    picture = np.zeros((20, 40, 3), dtype=np.uint8)
    picture[:, :10] = (255, 0, 0)  # red on the left
    image = Image.fromarray(picture)
    exif = image.getexif()
    exif[0x0112] = 6  # EXIF orientation: rotate 90° clockwise to view
    image.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    source = VideoSource(tmp_path / "phone.jpg")
    assert (source.info.n_frames, source.info.width, source.info.height) == (1, 20, 40)
    assert source.info.backend == "image" and source.info.duration == 0.0
    frame = source.read(np.array([0]))[0]
    assert frame.shape == (40, 20, 3)
    assert frame[:10, :, 0].mean() > 200 and frame[-10:, :, 0].mean() < 50  # red now on top
    (tmp_path / "fake.png").write_text("<html>not a picture</html>")
    with pytest.raises(VideoError) as err:
        VideoSource(tmp_path / "fake.png")
    assert err.value.reason == "unreadable"


def f1_on_test(run_dir: Path) -> float:
    return json.loads((run_dir / "metrics.json").read_text())["test"]["f1"]


@pytest.mark.slow
def test_a_planted_image_set_trains_to_f1_095_with_clip(tmp_path):
    labels = make_image_demo_set(tmp_path / "images", n_harmful=40, n_safe=40, seed=3)
    cache = tmp_path / "cache"
    extract = harmcache("extract", tmp_path / "images", "--out", cache, "--random-init")
    assert extract.returncode == 0, extract.stderr
    assert "extracted 80, cached 0, failed 0" in extract.stdout + extract.stderr
    for head in ("logreg", "transformer"):
        run = tmp_path / "runs" / head
        trained = harmcache(
            "train", "--cache", cache, "--labels", labels, "--head", head, "--out", run,
            "--features", "clip",
        )  # fmt: skip
        assert trained.returncode == 0, trained.stderr
        split = list(csv.DictReader(open(run / "split.csv")))
        assert sum(r["split"] == "test" for r in split) >= 10
        print(f"\nimages, {head} on clip: test F1 {f1_on_test(run):.3f}")
        assert f1_on_test(run) >= 0.95, (head, f1_on_test(run))


@pytest.mark.slow
def test_images_and_videos_train_together_with_slowfast_masked_for_images(tmp_path):
    videos = make_demo_set(tmp_path / "mixed", n_safe=5, seed=1)
    images = make_image_demo_set(tmp_path / "mixed" / "images", n_harmful=12, n_safe=12, seed=1)
    rows = [
        {"path": str((videos.parent / r["path"]).resolve()), "label": r["label"]}
        for r in csv.DictReader(open(videos))
    ] + [
        {"path": str((images.parent / r["path"]).resolve()), "label": r["label"]}
        for r in csv.DictReader(open(images))
    ]
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as f:
        writer = csv.DictWriter(f, ["path", "label"])
        writer.writeheader()
        writer.writerows(rows)
    cache = tmp_path / "cache"
    extract = harmcache("extract", tmp_path / "mixed", "--out", cache, *SMALL)
    assert extract.returncode == 0, extract.stderr
    info = harmcache("cache", "info", cache)
    assert "24 still image(s) have no SlowFast windows" in info.stdout
    for head in ("transformer", "lightgbm", "logreg"):
        run = tmp_path / "runs" / head
        trained = harmcache(
            "train", "--cache", cache, "--labels", labels, "--head", head, "--out", run,
            "--features", "clip,slowfast",
        )  # fmt: skip
        assert trained.returncode == 0, trained.stderr
        join = json.loads((run / "metrics.json").read_text())["join"]
        assert join["without_rows"] == {"slowfast": 24}  # every image, masked
        assert join["left_out"] == {}
        assert f1_on_test(run) >= 0.8, (head, f1_on_test(run))
    # An image scores as one instant; a video keeps its segment timeline.
    image = next(r["path"] for r in rows if r["path"].endswith(".png"))
    video = next(r["path"] for r in rows if r["path"].endswith(".mp4"))
    scored = harmcache(
        "predict", image, video, "--run", tmp_path / "runs" / "transformer", "--json"
    )
    assert scored.returncode == 0, scored.stderr
    out = {
        Path(p["path"]).suffix: p for p in json.loads(scored.stdout.splitlines()[-1])["predictions"]
    }
    assert out[".png"]["duration"] == 0.0
    assert out[".png"]["timeline"] == [{"start": 0.0, "end": 0.0, "score": out[".png"]["score"]}]
    assert out[".mp4"]["duration"] > 0 and len(out[".mp4"]["timeline"]) == 8
    with FeatureCache(cache) as store:
        slowfast = next(f for f in store.families() if f.extractor == "slowfast")
        assert store.index.backends(slowfast.name)["image"] == 24
