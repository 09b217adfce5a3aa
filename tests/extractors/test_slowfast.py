"""SlowFast's two pathways get the right frames, in time order (a model with a pathway bug scored
0.12 F1 lower; see docs/design-notes.md#slowfast-pathway-packing). Frames carry their own index as
their pixel value, so every frame can be traced."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("HARMCACHE_OFFLINE", "1")

from harmcache.extractors.base import ExtractSettings, WeightsSource  # noqa: E402
from harmcache.extractors.slowfast import (  # noqa: E402
    MEAN,
    STD,
    SlowFastExtractor,
    pack_pathways,
    preprocess_windows,
)
from harmcache.types import VideoInfo  # noqa: E402
from harmcache.video.decoded import DecodedVideo  # noqa: E402

CROP = 64


def index_frames(n: int, h: int = 48, w: int = 80) -> np.ndarray:
    """(n, h, w, 3) uint8 frames whose every pixel equals the frame's index."""
    assert n <= 256
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, h, w, 3)).copy()


def frame_ids(clip: torch.Tensor) -> list[list[int]]:
    """Undo the normalisation of a (B, C, T, H, W) clip and read each frame's index back."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1, 1)
    pixels = (clip * std + mean) * 255
    ids = pixels.round().to(torch.int64)
    # A constant frame stays constant through resize and crop: every pixel says the same.
    assert torch.all(ids == ids[..., :1, :1])
    assert torch.all(ids == ids[:, :1])
    return ids[:, 0, :, 0, 0].tolist()


def test_pack_pathways_takes_every_fourth_frame_in_order():
    fast = torch.arange(32, dtype=torch.float32).view(1, 1, 32, 1, 1).expand(2, 3, 32, CROP, CROP)
    slow, same_fast = pack_pathways(fast)
    assert slow.shape == (2, 3, 8, CROP, CROP)
    assert same_fast.shape == (2, 3, 32, CROP, CROP)
    assert slow[0, 0, :, 0, 0].tolist() == list(range(0, 32, 4))
    assert same_fast[1, 2, :, 5, 5].tolist() == list(range(32))


@pytest.mark.parametrize("shape", [(3, 32, CROP, CROP), (1, 3, 30, CROP, CROP)])
def test_pack_pathways_rejects_other_layouts(shape):
    with pytest.raises(ValueError, match=r"expected a \(B, C, T, H, W\) clip|do not split"):
        pack_pathways(torch.zeros(shape))


def test_preprocess_keeps_time_order_and_layout():
    windows = index_frames(64).reshape(2, 32, 48, 80, 3)
    clip = preprocess_windows(windows, short_side=CROP, crop=CROP, device="cpu")
    assert clip.shape == (2, 3, 32, CROP, CROP) and clip.dtype == torch.float32
    assert frame_ids(clip) == [list(range(32)), list(range(32, 64))]


class _Recorder(torch.nn.Module):
    """Stands in for SlowFast: records the pathways it is fed, returns zeros of the right width."""

    def __init__(self):
        super().__init__()
        self.calls: list[list[torch.Tensor]] = []

    def forward(self, pathways):
        self.calls.append([p.clone() for p in pathways])
        return torch.zeros(pathways[0].shape[0], SlowFastExtractor.dim)


def test_the_model_sees_the_window_frames_slow_then_fast():
    n = 160
    info = VideoInfo(n, 25.0, n / 25, 80, 48, "synthetic")
    video = DecodedVideo(info, np.arange(n), index_frames(n))
    settings = ExtractSettings(
        windows=2,
        batch_size=1,
        slowfast_short_side=CROP,
        slowfast_crop=CROP,
        weights=WeightsSource(random_init=True),
    )
    extractor = SlowFastExtractor(settings)
    extractor.model = recorder = _Recorder()
    record = extractor.extract(video)

    windows = record.extras["window_frames"]
    np.testing.assert_array_equal(windows[0], np.arange(40 - 32, 40 + 32, 2))  # centre 40
    assert len(recorder.calls) == 2  # batch_size 1: one window per forward pass
    for window, (slow, fast) in zip(windows, recorder.calls, strict=True):
        assert slow.shape == (1, 3, 8, CROP, CROP) and fast.shape == (1, 3, 32, CROP, CROP)
        assert frame_ids(fast) == [window.tolist()]
        assert frame_ids(slow) == [window[::4].tolist()]
    np.testing.assert_array_equal(record.frame_index, windows[:, 16])
