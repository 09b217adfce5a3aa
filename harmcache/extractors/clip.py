"""CLIP ViT-B/32 image embeddings, one per uniformly sampled frame.

Preprocessing is CLIP's own recipe (bicubic short side 224, centre crop, CLIP mean/std), written
in torch so it runs on the device. The row is the 512-d projected embedding, not normalised:
heads can normalise, but cannot undo a normalisation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harmcache.errors import WeightsUnavailable
from harmcache.extractors.base import Extractor, register_extractor
from harmcache.extractors.sampled import frame_sampling_options, sampled_frames
from harmcache.types import VideoInfo

MODEL_NAME = "ViT-B/32"
INPUT_SIZE = 224
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


@register_extractor("clip")
class ClipExtractor(Extractor):
    """CLIP ViT-B/32 visual tower: (frames, 512) float32 embeddings; `tta='flip'` averages each
    frame's embedding with its mirror's."""

    version = "1"
    dim = 512
    weight_files = ("ViT-B-32.pt",)
    option_fields = {"frames": "frames", "fps": "fps", "tta": "tta"}

    def options(self) -> dict[str, Any]:
        s = self.settings
        return {
            "model": MODEL_NAME,
            **frame_sampling_options(s),
            "tta": s.tta,
            "input_size": INPUT_SIZE,
            "interpolation": "bicubic-antialias",
            "crop": "center",
            "mean": list(MEAN),
            "std": list(STD),
        }

    def row_frames(self, info: VideoInfo, times: np.ndarray) -> np.ndarray:
        return sampled_frames(self.settings, info, times)

    def build(self, weights_path: Path | None) -> Any:
        if weights_path is None:
            from clip.model import VisionTransformer

            # ViT-B/32's visual tower; base.load() has seeded torch, so the init is reproducible.
            return VisionTransformer(
                input_resolution=INPUT_SIZE,
                patch_size=32,
                width=768,
                layers=12,
                heads=12,
                output_dim=self.dim,
            )
        import clip

        # clip.load takes a file path: a JIT archive (the official file) or a CLIP state dict.
        visual = clip.load(str(weights_path), device="cpu", jit=False)[0].visual
        if visual.output_dim != self.dim or visual.input_resolution != INPUT_SIZE:
            raise WeightsUnavailable(
                f"{weights_path} is not CLIP {MODEL_NAME}: it embeds {visual.input_resolution}px "
                f"images into {visual.output_dim} dims, expected {INPUT_SIZE}px and {self.dim}"
            )
        return visual

    def compute_batch(self, frames: np.ndarray, first_row: int) -> tuple[np.ndarray, dict]:
        return self._embed_chunk(frames), {}

    def _embed_chunk(self, frames: np.ndarray) -> np.ndarray:
        from harmcache.extractors.preprocess import to_tensor

        x = to_tensor(frames, self.settings.device)
        emb = self._embed(x)
        if self.settings.tta == "flip":
            # Same chunk shape for the mirror pass: its rows equal a no-TTA run on mirrored frames.
            emb = (emb + self._embed(x.flip(-1))) / 2
        return emb.float().cpu().numpy()

    def _embed(self, x: Any) -> Any:
        from harmcache.extractors.preprocess import center_crop, normalize, resize_short_side

        x = resize_short_side(x, INPUT_SIZE, "bicubic")
        x = normalize(center_crop(x, INPUT_SIZE), MEAN, STD)
        return self.model(x).float()

    @classmethod
    def library_cache_paths(cls) -> list[Path]:
        return [Path("~/.cache/clip").expanduser() / cls.weight_files[0]]

    @classmethod
    def download(cls, target_dir: Path) -> Path:
        import clip.clip

        return Path(clip.clip._download(clip.clip._MODELS[MODEL_NAME], str(target_dir)))
