"""`harmcache.extract` from Python does what the command does, with the same errors."""

from __future__ import annotations

import pytest

import harmcache
from harmcache.errors import UsageError
from harmcache.store.cache import FeatureCache

SMALL = dict(random_init=True, frames=2, windows=1, yolo_imgsz=64, slowfast_crop=64, device="cpu")


def test_extract_from_python_with_default_workers(make_video, tmp_path):
    for i in range(2):
        make_video(f"v/{i}.mp4", seed=i)
    (tmp_path / "v" / "bad.mp4").write_bytes(b"not a video")
    summary = harmcache.extract([tmp_path / "v"], tmp_path / "cache", **SMALL)
    assert (summary.count("extracted"), summary.count("failed")) == (2, 1)
    assert [r.reason for r in summary.failed] == ["unreadable"]
    with harmcache.FeatureCache(tmp_path / "cache") as cache:
        assert sorted(f.extractor for f in cache.families()) == ["clip", "pdq", "slowfast", "yolo"]
    assert harmcache.FeatureCache is FeatureCache


@pytest.mark.parametrize(
    "kwargs,message",
    [
        # A library error names the option as Python spells it; the CLI says the flag.
        (dict(device="tpu"), r"^device must be auto, cpu or cuda\[:N\], got 'tpu'$"),
        (dict(extractors=["clip", "clip"]), "an extractor is named twice"),
        (dict(weights_dir="w"), "--weights-dir and --random-init exclude each other"),
        (dict(workers=-1), r"^workers must be 0 or more, got -1$"),
    ],
)
def test_bad_settings_raise_usage_errors(make_video, tmp_path, kwargs, message):
    video, _ = make_video("v.mp4")
    with pytest.raises(UsageError, match=message):
        harmcache.extract([video], tmp_path / "cache", **{**SMALL, **kwargs})
