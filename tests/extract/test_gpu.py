"""CUDA extraction keeps GPU memory bounded by the batch size, not by the number of videos.

CLIP/SlowFast features piled up on the GPU until it held 12 GB (see
docs/design-notes.md#features-leave-the-gpu-at-once). These tests extract many tiny videos with
random-init backbones and check that nothing stays on the device.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

# No test may touch the network; ultralytics reads this at import time.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("HARMCACHE_OFFLINE", "1")

from harmcache.extract.pipeline import build_extractors, run_extraction  # noqa: E402
from harmcache.extractors.base import ExtractSettings, WeightsSource  # noqa: E402
from harmcache.video.decode import VideoSource  # noqa: E402
from harmcache.video.encode import write_video  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

EXTRACTORS = ("yolo", "clip", "slowfast")
SMALL_CUDA = dict(
    device="cuda",
    frames=4,
    windows=1,
    batch_size=4,
    yolo_imgsz=64,
    slowfast_short_side=64,
    slowfast_crop=64,
    weights=WeightsSource(random_init=True, seed=0),
)
ONE_OFF_BYTES = 64 * 2**20
"""What may stay allocated after the first video and never grow again: library workspaces
(cuBLAS keeps its workspace in torch's allocator) and YOLO's cached anchor grid."""


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list:
    """100 tiny clips of one shape, so every video makes the same allocations."""
    folder = tmp_path_factory.mktemp("videos")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(100):
        frames = rng.integers(0, 256, size=(12, 32, 64, 3), dtype=np.uint8)
        paths.append(write_video(folder / f"v{i:03d}.mp4", frames, codec="libx264"))
    return paths


def loaded_extractors() -> list:
    extractors = build_extractors(EXTRACTORS, ExtractSettings(**SMALL_CUDA))
    for ex in extractors:
        ex.load()
    torch.cuda.synchronize()
    return extractors


def extract(paths, cache_dir, extractors) -> None:
    summary = run_extraction(paths, cache_dir, extractors, workers=0)
    assert summary.count("extracted") == len(paths)
    torch.cuda.synchronize()


def peak_of(paths, cache_dir, extractors) -> int:
    """Peak bytes allocated on the device while extracting `paths` into a fresh cache."""
    torch.cuda.reset_peak_memory_stats()
    extract(paths, cache_dir, extractors)
    return torch.cuda.max_memory_allocated()


def test_gpu_memory_is_bounded_by_batch_not_video_count(videos, tmp_path):
    extractors = loaded_extractors()
    extract(videos[:2], tmp_path / "warm", extractors)  # one-off workspaces come first
    steady = torch.cuda.memory_allocated()

    peak_10 = peak_of(videos[:10], tmp_path / "ten", extractors)
    peak_100 = peak_of(videos, tmp_path / "hundred", extractors)

    assert peak_100 <= 1.10 * peak_10
    # The weights dominate the totals; the working memory above them must not grow either
    # (1 MiB of slack for allocator rounding).
    assert peak_100 - steady <= 1.10 * (peak_10 - steady) + 2**20


def test_no_feature_tensor_left_on_device_after_a_batch(videos, tmp_path):
    extractors = loaded_extractors()
    baseline = torch.cuda.memory_allocated()  # the model weights, and nothing else of ours

    extract(videos[:1], tmp_path / "first", extractors)
    after_first = torch.cuda.memory_allocated()
    extract(videos[1:30], tmp_path / "rest", extractors)
    after_rest = torch.cuda.memory_allocated()

    assert after_rest == after_first, "device memory grew with the number of videos"
    assert after_first - baseline <= ONE_OFF_BYTES


def test_feature_records_come_back_as_numpy(videos):
    extractors = loaded_extractors()
    source = VideoSource(videos[0])
    decoded = source.decode(np.arange(source.info.n_frames))
    for ex in extractors:
        record = ex.extract(decoded)
        arrays = [record.features, record.frame_index, record.timestamp, *record.extras.values()]
        assert all(isinstance(a, np.ndarray) for a in arrays), ex.name
        assert record.features.dtype == np.float32
