"""Shared image preprocessing in plain torch, so every backbone's recipe runs on its device.

Frames arrive as decoded uint8 RGB arrays (N, H, W, 3); everything here works on float
(N, C, H, W) tensors in [0, 1]. The ops are deterministic and need no torchvision transforms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def to_tensor(frames: np.ndarray, device: str | torch.device) -> torch.Tensor:
    """(N, H, W, 3) uint8 → (N, 3, H, W) float32 in [0, 1] on `device`."""
    # Move the uint8 array first: a quarter of the bytes of the float version cross the bus.
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    return x.permute(0, 3, 1, 2).float().div_(255.0)


def resize(x: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize (N, C, H, W) to `size` = (h, w) with antialiasing, clamped to [0, 1].

    Bicubic overshoots; clamping matches PIL, which the CLIP and SlowFast recipes saw as uint8."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    out = F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True)
    return out.clamp_(0.0, 1.0)


def short_side_size(height: int, width: int, short: int) -> tuple[int, int]:
    """(h, w) with the short side equal to `short`, the long side truncated as torchvision does."""
    if height <= width:
        return short, int(short * width / height)
    return int(short * height / width), short


def resize_short_side(x: torch.Tensor, short: int, mode: str = "bilinear") -> torch.Tensor:
    """Resize so the short side is `short`, keeping the aspect ratio."""
    return resize(x, short_side_size(x.shape[-2], x.shape[-1], short), mode)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The central size×size square (offsets rounded as torchvision's CenterCrop does)."""
    h, w = x.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"cannot crop {size}x{size} from a {h}x{w} image")
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return x[..., top : top + size, left : left + size]


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(x - mean) / std per channel; channels are dim 1 of (N, C, ...)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(shape)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(shape)
    return (x - m) / s


LETTERBOX_PAD = 114 / 255
"""Ultralytics' grey padding value."""


@dataclass(frozen=True)
class Letterbox:
    """How a letterboxed image maps back to the original: x_orig = (x - pad_x) / scale_x."""

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    width: int
    """Original width and height, for clipping boxes."""
    height: int

    def unmap_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) x1 y1 x2 y2 in letterbox pixels → original pixels, clipped to the image."""
        out = np.asarray(boxes, dtype=np.float32).copy()
        out[:, [0, 2]] = ((out[:, [0, 2]] - self.pad_x) / self.scale_x).clip(0, self.width)
        out[:, [1, 3]] = ((out[:, [1, 3]] - self.pad_y) / self.scale_y).clip(0, self.height)
        return out


def letterbox(x: torch.Tensor, imgsz: int) -> tuple[torch.Tensor, Letterbox]:
    """Resize the long side to `imgsz` keeping the aspect ratio, pad to imgsz×imgsz with grey.

    Bilinear with antialias (ultralytics uses cv2 INTER_LINEAR); the padding is split as
    ultralytics splits it, so boxes map back the same way."""
    h, w = x.shape[-2:]
    r = min(imgsz / h, imgsz / w)
    new_h, new_w = max(1, round(h * r)), max(1, round(w * r))
    x = resize(x, (new_h, new_w), "bilinear")
    dh, dw = (imgsz - new_h) / 2, (imgsz - new_w) / 2
    # An odd leftover goes to the bottom/right, as in ultralytics' LetterBox.
    top, left = round(dh - 0.1), round(dw - 0.1)
    bottom, right = imgsz - new_h - top, imgsz - new_w - left
    x = F.pad(x, (left, right, top, bottom), value=LETTERBOX_PAD)
    return x, Letterbox(new_w / w, new_h / h, left, top, int(w), int(h))
