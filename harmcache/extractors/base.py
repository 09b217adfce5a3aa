"""The extractor contract and its registry.

An extractor turns the decoded frames of one video into a `FeatureRecord`. Its `spec()` holds
everything that changes the numbers; the fingerprint hashes it and names the shard family.
Adding a backbone is one new module with a class decorated by `@register_extractor`.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harmcache.hashing import fingerprint
from harmcache.threads import torch_threads
from harmcache.types import FeatureRecord, VideoInfo
from harmcache.video.decode import DecodedVideo

_REGISTRY: dict[str, type[Extractor]] = {}


def register_extractor(name: str):
    """Class decorator: make an extractor available under `name`."""

    def decorate(cls: type[Extractor]) -> type[Extractor]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def available_extractors() -> list[str]:
    _import_builtin()
    return sorted(_REGISTRY)


def get_extractor(name: str) -> type[Extractor]:
    _import_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        from harmcache.errors import UsageError

        raise UsageError(
            f"unknown extractor {name!r}; choose from {', '.join(sorted(_REGISTRY))}"
        ) from None


def _import_builtin() -> None:
    # Importing the modules runs their @register_extractor decorators.
    from harmcache.extractors import clip, slowfast, yolo  # noqa: F401


@dataclass(frozen=True)
class WeightsSource:
    """Where backbone weights come from."""

    random_init: bool = False
    """Same architectures with seeded random weights (tests, demo, benchmarks)."""
    seed: int = 0
    """Seed for random-init weights."""
    weights_dir: Path | None = None
    """Folder holding the canonical weight files; None means each library's own cache."""


@dataclass(frozen=True)
class ExtractSettings:
    """Every extraction setting. Each extractor's `spec()` picks the fields that affect it, so a
    change to one backbone's settings leaves the other families valid."""

    frames: int = 32
    """Frames sampled uniformly over the video for per-frame extractors (CLIP, YOLO)."""
    windows: int = 4
    """SlowFast windows per video, each 32 frames at stride 2."""
    batch_size: int = 16
    """Frames (or windows) per forward pass. Each video is batched on its own in chunks of this
    size, so a video's features never depend on its neighbours; GPU memory is bounded by it."""
    device: str = "cpu"
    """Resolved torch device: cpu, cuda or cuda:N."""
    tta: str | None = None
    """'flip' averages each CLIP embedding with the embedding of the mirrored frame."""
    weights: WeightsSource = field(default_factory=WeightsSource)
    decode_short_side: int = 360
    """Frames are area-downscaled at decode time so the short side is at most this."""
    yolo_imgsz: int = 640
    """YOLO letterbox size (a multiple of 32)."""
    yolo_conf: float = 0.25
    """YOLO detection confidence floor."""
    slowfast_short_side: int = 256
    slowfast_crop: int = 256
    cpu_threads: int = 0
    """torch intra-op threads for the models on the CPU; 0 takes the process's count. The count
    changes float results, so a run fixes it once and every engine's workers use the same."""

    def __post_init__(self) -> None:
        from harmcache.errors import UsageError

        if self.frames < 1:
            raise UsageError(f"--frames must be at least 1, got {self.frames}")
        if self.windows < 1:
            raise UsageError(f"--windows must be at least 1, got {self.windows}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.tta not in (None, "flip"):
            raise UsageError(f"--tta must be 'flip' if given, got {self.tta!r}")
        if self.yolo_imgsz % 32 or self.yolo_imgsz < 32:
            raise UsageError(f"--yolo-imgsz must be a multiple of 32, got {self.yolo_imgsz}")
        if self.slowfast_crop % 32 or self.slowfast_crop < 32:
            raise UsageError(f"--slowfast-crop must be a multiple of 32, got {self.slowfast_crop}")
        if self.slowfast_short_side < self.slowfast_crop:
            raise UsageError(
                f"SlowFast short side {self.slowfast_short_side} is smaller than its crop "
                f"{self.slowfast_crop}; raise --slowfast-short-side or lower --slowfast-crop"
            )


class Extractor(ABC):
    """A frozen backbone. `__init__` does no work; `load()` builds the model on the device."""

    name: ClassVar[str]
    version: ClassVar[str]
    """Bump when the code changes the numbers: the fingerprint changes with it."""
    dim: ClassVar[int]
    weight_files: ClassVar[tuple[str, ...]]
    """Canonical file names looked for in --weights-dir."""
    option_fields: ClassVar[dict[str, str]] = {}
    """options() key → ExtractSettings field, so a saved spec can be turned back into settings."""

    def __init__(self, settings: ExtractSettings):
        self.settings = settings
        self.model: Any = None
        self._weights_identity: dict | None = None
        self._weights_path: Path | None = None

    # --- what subclasses provide ---------------------------------------------------------
    @abstractmethod
    def options(self) -> dict[str, Any]:
        """Preprocessing, sampling and TTA settings that change this extractor's numbers."""

    @abstractmethod
    def frame_indices(self, info: VideoInfo) -> np.ndarray:
        """The frame indices this extractor needs from a video (any order, repeats allowed)."""

    @abstractmethod
    def build(self, weights_path: Path | None) -> Any:
        """The model, with weights from `weights_path`, or seeded random weights when None."""

    @abstractmethod
    def compute(self, video: DecodedVideo) -> FeatureRecord:
        """Features of one video. Called under inference mode (and autocast on CUDA)."""

    @classmethod
    def library_cache_paths(cls) -> list[Path]:
        """Where the backbone's own library keeps downloaded weights (checked before download)."""
        return []

    @classmethod
    def download(cls, target_dir: Path) -> Path:
        """Fetch the canonical weights into `target_dir` with the library's own downloader."""
        raise NotImplementedError

    # --- shared machinery ----------------------------------------------------------------
    def resolve_weights(self) -> dict:
        """Find the weights (no model building) and return their identity for the fingerprint."""
        if self._weights_identity is None:
            from harmcache.extractors.weights import resolve_weights

            self._weights_path, self._weights_identity = resolve_weights(type(self), self.settings)
        return self._weights_identity

    @property
    def precision(self) -> str:
        return "fp16-autocast" if self.settings.device.startswith("cuda") else "fp32"

    def spec(self) -> dict[str, Any]:
        """Everything that changes this extractor's numbers."""
        return {
            "extractor": self.name,
            "version": self.version,
            "weights": self.resolve_weights(),
            "options": self.options(),
            "batch_size": self.settings.batch_size,
            "precision": self.precision,
            "decode": {"short_side_max": self.settings.decode_short_side},
        }

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.spec())

    @property
    def random_init(self) -> bool:
        return self.settings.weights.random_init

    def load(self) -> None:
        if self.model is not None:
            return
        import torch

        self.resolve_weights()
        # fork_rng: seeding random-init weights must not disturb the caller's global RNG.
        with torch.random.fork_rng(devices=[]):
            if self.random_init:
                torch.manual_seed(self.settings.weights.seed)
            model = self.build(None if self.random_init else self._weights_path)
        self.model = model.to(self.settings.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def extract(self, video: DecodedVideo) -> FeatureRecord:
        """Features of one video; every tensor is back on the CPU when this returns."""
        import torch

        self.load()
        threads = self.settings.cpu_threads if self.settings.device == "cpu" else 0
        with torch.inference_mode(), self._autocast(), torch_threads(threads):
            record = self.compute(video)
        record.features = np.ascontiguousarray(record.features, dtype=np.float32)
        record.frame_index = np.asarray(record.frame_index, dtype=np.int64)
        record.timestamp = np.asarray(record.timestamp, dtype=np.float64)
        return record

    def _autocast(self):
        import torch

        if self.settings.device.startswith("cuda"):
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    rows_cost: ClassVar[int] = 1
    """Frames one row costs (a SlowFast window is 32), so --batch-size bounds frames per pass."""

    def chunks(self, n: int):
        """Slices of one video's rows in fixed-size chunks (batch composition never varies)."""
        size = max(1, self.settings.batch_size // self.rows_cost)
        for start in range(0, n, size):
            yield slice(start, min(start + size, n))
