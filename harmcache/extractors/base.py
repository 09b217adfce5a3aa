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
from harmcache.video.chunks import CHUNK_FRAMES
from harmcache.video.decoded import DecodedVideo

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
    from harmcache.extractors import audio, clip, pdq, slowfast, yolo  # noqa: F401


@dataclass(frozen=True)
class WeightsSource:
    """Where backbone weights come from."""

    random_init: bool = False
    """Same architectures with seeded random weights (tests, demo, benchmarks)."""
    seed: int = 0
    """Seed for random-init weights."""
    weights_dir: Path | None = None
    """Folder holding the canonical weight files; None means each library's own cache."""


DEFAULT_FRAMES = 32
DEFAULT_WINDOWS = 4


@dataclass(frozen=True)
class ExtractSettings:
    """Every extraction setting, resolved (the device chosen, the thread count fixed): what
    the extractors read. Each extractor's `spec()` picks the fields that affect it, so a change
    to one backbone's settings leaves the other families valid. Built from the user's
    `ExtractConfig`, or from a saved spec (`harmcache.extract.respec`)."""

    frames: int = DEFAULT_FRAMES
    """Frames sampled uniformly over the video for per-frame extractors (CLIP, YOLO)."""
    windows: int = DEFAULT_WINDOWS
    """SlowFast windows per video, each 32 frames at stride 2."""
    fps: float | None = None
    """Instead of `frames`: CLIP and YOLO take one frame every 1/fps seconds of the video."""
    window_every: float | None = None
    """Instead of `windows`: one SlowFast window every this many seconds of the video."""
    pdq_fps: float = 1.0
    """Frames the pdq extractor hashes per second of the video (vPDQ's rate is 1)."""
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
    chunk_frames: int = CHUNK_FRAMES
    """Wanted frames decoded per chunk: bounds the frames held in memory for a long video. It
    changes no number (a video's rows are batched the same way however its frames arrive), so
    it is not in the spec."""

    def __post_init__(self) -> None:
        # The user's options are checked where they are given (`harmcache.extract.config`).
        if self.chunk_frames < 1:
            raise ValueError(f"a decode chunk holds at least 1 frame, got {self.chunk_frames}")


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
    def row_frames(self, info: VideoInfo, times: np.ndarray) -> np.ndarray:
        """The frames each row needs: (L,) for one frame per row, (L, k) for k frames per row
        (rows in time order). `times` holds every frame's presentation time in seconds."""

    @abstractmethod
    def build(self, weights_path: Path | None) -> Any:
        """The model, with weights from `weights_path`, or seeded random weights when None."""

    @abstractmethod
    def compute_batch(self, frames: np.ndarray, first_row: int) -> tuple[np.ndarray, dict]:
        """Features of one batch of a video's rows: frames (B, H, W, 3), or (B, k, H, W, 3) for
        k frames per row, uint8. Returns (B, dim) features and extras arrays for these rows
        (row numbers counted from `first_row`). Called under inference mode (and autocast on
        CUDA)."""

    def finish_record(self, record: FeatureRecord, row_frames: np.ndarray) -> None:
        """Add whole-video extras to a finished record (nothing by default)."""
        return None

    @classmethod
    def library_cache_paths(cls) -> list[Path]:
        """Where the backbone's own library keeps downloaded weights (checked before download)."""
        return []

    @classmethod
    def download(cls, target_dir: Path) -> Path:
        """Fetch the canonical weights into `target_dir` with the library's own downloader."""
        raise NotImplementedError

    # --- shared machinery ----------------------------------------------------------------
    def frame_indices(self, info: VideoInfo, times: np.ndarray | None = None) -> np.ndarray:
        """The frame indices this extractor needs from a video (any order, repeats allowed)."""
        return np.asarray(self.row_frames(info, _times(info, times))).ravel()

    def session(self, info: VideoInfo, times: np.ndarray | None = None) -> ExtractionSession:
        """One video through this extractor, fed its frames chunk by chunk."""
        return ExtractionSession(self, info, _times(info, times))

    def compute(self, video: DecodedVideo) -> FeatureRecord:
        """Features of one video whose frames are all decoded."""
        session = self.session(video.info, video.frame_times)
        session.feed(video, video.info.n_frames - 1)
        return session.finish()

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
        self.load()
        return self.compute(video)

    def run_batch(self, frames: np.ndarray, first_row: int) -> tuple[np.ndarray, dict]:
        """`compute_batch` under inference mode, autocast on CUDA and the run's thread count."""
        import torch

        self.load()
        threads = self.settings.cpu_threads if self.settings.device == "cpu" else 0
        with torch.inference_mode(), self._autocast(), torch_threads(threads):
            return self.compute_batch(frames, first_row)

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


def _times(info: VideoInfo, times: np.ndarray | None) -> np.ndarray:
    if times is not None:
        return np.asarray(times, dtype=np.float64)
    return np.arange(info.n_frames, dtype=np.float64) / (info.fps if info.fps > 0 else 1.0)


MISSED = "frame indices were not decoded; the frame plan missed them"


class ExtractionSession:
    """One video through one extractor, fed frames chunk by chunk in time order.

    The rows are batched in fixed-size chunks of the video's own rows, exactly as if every frame
    had been decoded at once: a batch runs as soon as every frame its rows need has arrived, so
    a video's features never depend on how its frames were chunked. Only the frames of rows not
    yet computed are held (at most about a batch of rows, plus window overlap)."""

    def __init__(self, extractor: Extractor, info: VideoInfo, times: np.ndarray):
        self.extractor = extractor
        self.info = info
        rows = np.asarray(extractor.row_frames(info, times), dtype=np.int64)
        self.rows = rows
        # (rows, frames per row); `rows` may be empty (a still image has no SlowFast window).
        self.need = rows.reshape(len(rows), rows.shape[1] if rows.ndim == 2 else 1)
        per_row = self.need.shape[1]
        self.frame_index = rows if rows.ndim == 1 else rows[:, per_row // 2]
        self.timestamp = np.asarray(times, dtype=np.float64)[self.frame_index]
        self.ready_at = self.need.max(axis=1) if len(rows) else np.zeros(0, np.int64)
        self.batches = list(extractor.chunks(len(rows)))
        self.wanted = np.unique(self.need)
        # The last row that needs each wanted frame: a frame is dropped once it has run.
        last = np.zeros(len(self.wanted), dtype=np.int64)
        row_of = np.repeat(np.arange(len(rows)), per_row)
        np.maximum.at(last, np.searchsorted(self.wanted, self.need.ravel()), row_of)
        self.last_use = dict(zip(self.wanted.tolist(), last.tolist()))
        self.features = np.zeros((len(rows), extractor.dim), dtype=np.float32)
        self.extras: dict[str, list[np.ndarray]] = {}
        self.buffer: dict[int, np.ndarray] = {}
        self.delivered = -1
        self.done = 0
        self.peak_frames = 0
        """Most frames this session held at once (memory is bounded by it)."""

    def feed(self, chunk: DecodedVideo, upto: int) -> None:
        """Frames at `chunk.indices`; every frame up to `upto` this video needs has now come."""
        pos = np.searchsorted(self.wanted, chunk.indices)
        pos = np.minimum(pos, max(len(self.wanted) - 1, 0))
        hit = (self.wanted[pos] == chunk.indices) if len(self.wanted) else pos < 0
        for i in np.flatnonzero(hit):
            # A copy: holding a view would keep the whole chunk alive.
            self.buffer[int(chunk.indices[i])] = np.array(chunk.frames[i])
        self.peak_frames = max(self.peak_frames, len(self.buffer))
        self.delivered = max(self.delivered, int(upto))
        self._run_ready()

    def _run_ready(self) -> None:
        while self.done < len(self.batches):
            rows = self.batches[self.done]
            if self.ready_at[rows].max() > self.delivered:
                return
            need = self.need[rows]
            try:
                frames = np.stack([self.buffer[int(i)] for i in need.ravel()])
            except KeyError:
                raise KeyError(MISSED) from None
            if self.rows.ndim == 2:
                frames = frames.reshape(*need.shape, *frames.shape[1:])
            feats, extras = self.extractor.run_batch(frames, rows.start)
            self.features[rows] = feats
            for key, value in extras.items():
                self.extras.setdefault(key, []).append(value)
            for i in list(self.buffer):
                if self.last_use[i] < rows.stop:
                    del self.buffer[i]
            self.done += 1

    def finish(self) -> FeatureRecord:
        """The video's record, once every batch has run."""
        self._run_ready()
        if self.done < len(self.batches):
            raise KeyError(MISSED)
        record = FeatureRecord(
            np.ascontiguousarray(self.features, dtype=np.float32),
            np.asarray(self.frame_index, dtype=np.int64),
            np.asarray(self.timestamp, dtype=np.float64),
        )
        for key, parts in self.extras.items():
            record.extras[key] = np.concatenate(parts)
        self.extractor.finish_record(record, self.rows)
        self.buffer.clear()
        return record
