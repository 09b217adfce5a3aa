"""SlowFast R50 (8x8, Kinetics-400) clip features, one per temporal window.

Each window is 32 frames at stride 2 around a centre; the fast pathway sees all 32, the slow
pathway every 4th (alpha 4). Preprocessing is the model's own recipe: short side 256, centre
crop 256, mean/std 0.45/0.225. The row is the 2304-d pooled feature in front of the Kinetics
classifier (the classifier's projection is replaced by the identity).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harmcache.errors import WeightsUnavailable
from harmcache.extractors.base import Extractor, FeatureRecord, register_extractor
from harmcache.types import VideoInfo
from harmcache.video.image import IMAGE_BACKEND
from harmcache.video.sampling import tiled_window_indices, window_indices

LENGTH = 32
"""Fast-pathway frames per window."""
STRIDE = 2
"""Frame step inside a window."""
ALPHA = 4
"""Fast-to-slow frame ratio: the slow pathway gets LENGTH // ALPHA = 8 frames."""
MEAN = (0.45, 0.45, 0.45)
STD = (0.225, 0.225, 0.225)
CHECKPOINT_URL_KEY = "slowfast_r50"


def pack_pathways(fast: Any, alpha: int = ALPHA) -> list[Any]:
    """(B, C, T, H, W) fast clip → [slow, fast]; slow holds fast frames 0, alpha, 2·alpha, ….

    The order is the model's: pathway 0 is slow, pathway 1 is fast."""
    if fast.ndim != 5:
        raise ValueError(f"expected a (B, C, T, H, W) clip, got shape {tuple(fast.shape)}")
    if fast.shape[2] % alpha:
        raise ValueError(f"{fast.shape[2]} frames do not split into slow frames at alpha {alpha}")
    return [fast[:, :, ::alpha].contiguous(), fast]


def preprocess_windows(frames: np.ndarray, short_side: int, crop: int, device: str) -> Any:
    """(B, T, H, W, 3) uint8 windows → (B, 3, T, crop, crop) normalised float on `device`."""
    from harmcache.extractors.preprocess import center_crop, normalize, resize_short_side, to_tensor

    b, t = frames.shape[:2]
    x = to_tensor(frames.reshape(b * t, *frames.shape[2:]), device)
    x = normalize(center_crop(resize_short_side(x, short_side, "bilinear"), crop), MEAN, STD)
    return x.reshape(b, t, 3, crop, crop).permute(0, 2, 1, 3, 4).contiguous()


def _load_exactly(model: Any, state: dict, path: Path) -> None:
    """Load every tensor or none: a partial load would give plausible but wrong features."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise WeightsUnavailable(
            f"{path} is not a SlowFast R50 checkpoint: {len(missing)} missing and "
            f"{len(unexpected)} unexpected tensors (first: {(missing + unexpected)[0]})"
        )


@register_extractor("slowfast")
class SlowFastExtractor(Extractor):
    """SlowFast R50 8x8: (windows, 2304) float32 rows; frame_index is each window's centre and
    extras['window_frames'] (windows, 32) int64 holds every frame a window saw."""

    version = "1"
    dim = 2304
    weight_files = ("SLOWFAST_8x8_R50.pyth",)
    option_fields = {
        "windows": "windows",
        "window_every": "window_every",
        "short_side": "slowfast_short_side",
        "crop": "slowfast_crop",
    }
    rows_cost = 32  # a window is 32 frames: --batch-size counts frames, not windows

    def options(self) -> dict[str, Any]:
        s = self.settings
        if s.window_every is None:
            sampling: dict[str, Any] = {"windows": s.windows}
        else:
            # A new key rather than a changed one: the default spec stays as it always was.
            sampling = {"window_every": float(s.window_every), "sampling": "tiled-pts"}
        return {
            "model": "slowfast_r50",
            **sampling,
            "length": LENGTH,
            "stride": STRIDE,
            "alpha": ALPHA,
            "short_side": s.slowfast_short_side,
            "interpolation": "bilinear-antialias",
            "crop": s.slowfast_crop,
            "mean": list(MEAN),
            "std": list(STD),
        }

    def row_frames(self, info: VideoInfo, times: np.ndarray) -> np.ndarray:
        """(windows, 32) frame indices, one row per window; none for a still image (no motion
        to see: "not applicable", which stage two masks)."""
        if info.backend == IMAGE_BACKEND:
            return np.zeros((0, LENGTH), dtype=np.int64)
        every = self.settings.window_every
        if every is None:
            return window_indices(info.n_frames, self.settings.windows, LENGTH, STRIDE)
        return tiled_window_indices(times, every, LENGTH, STRIDE)

    def build(self, weights_path: Path | None) -> Any:
        import torch
        from pytorchvideo.models.hub import slowfast_r50

        # The head's average pool must cover the whole final feature map: the network's spatial
        # stride is 32 and the slow/fast pathways keep 8/32 frames.
        side = self.settings.slowfast_crop // 32
        model = slowfast_r50(
            pretrained=False,
            head_pool_kernel_sizes=((LENGTH // ALPHA, side, side), (LENGTH, side, side)),
        )
        # Drop the Kinetics classifier: the head then returns its pooled 2304-d input.
        model.blocks[-1].proj = torch.nn.Identity()
        if weights_path is not None:
            # weights_only=False as in pytorchvideo's own loader: the .pyth holds more than tensors.
            checkpoint = torch.load(weights_path, map_location="cpu", weights_only=False)
            dropped = f"blocks.{len(model.blocks) - 1}.proj."
            state = {
                k: v for k, v in checkpoint["model_state"].items() if not k.startswith(dropped)
            }
            _load_exactly(model, state, weights_path)
        return model

    def compute_batch(self, frames: np.ndarray, first_row: int) -> tuple[np.ndarray, dict]:
        s = self.settings
        fast = preprocess_windows(frames, s.slowfast_short_side, s.slowfast_crop, s.device)
        return self.model(pack_pathways(fast)).float().cpu().numpy(), {}

    def finish_record(self, record: FeatureRecord, row_frames: np.ndarray) -> None:
        record.extras["window_frames"] = np.asarray(row_frames, dtype=np.int64).reshape(-1, LENGTH)

    @classmethod
    def library_cache_paths(cls) -> list[Path]:
        import torch

        return [Path(torch.hub.get_dir()) / "checkpoints" / cls.weight_files[0]]

    @classmethod
    def download(cls, target_dir: Path) -> Path:
        import torch
        from pytorchvideo.models.hub.slowfast import checkpoint_paths

        target = Path(target_dir) / cls.weight_files[0]
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(checkpoint_paths[CHECKPOINT_URL_KEY], str(target))
        return target
