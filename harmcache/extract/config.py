"""Every user option of stage one, declared once: `harmcache.extract(...)` takes an
`ExtractConfig` (or its fields as keywords) and `harmcache extract` builds each flag from the
same field, so a default, a help text or a check cannot differ between the two.

The config is what the user asked for; `ExtractConfig.settings` resolves it into the
extractor-facing `ExtractSettings` on the device the run uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harmcache.errors import UsageError
from harmcache.extractors.base import (
    DEFAULT_FRAMES,
    DEFAULT_WINDOWS,
    ExtractSettings,
    WeightsSource,
    get_extractor,
)
from harmcache.options import above, at_least, one_of, setting, validate

DEFAULT_EXTRACTORS = ("yolo", "clip", "slowfast", "pdq")
"""What `harmcache extract` runs unless told: the three backbones and the PDQ hashes, which
heads leave out unless asked for (their cost: bench/README.md, "PDQ cost")."""
FRAMES_AND_FPS = "--frames and --fps exclude each other: pass one"
WINDOWS_AND_EVERY = "--windows and --window-every exclude each other: pass one"


def check_device(device: str) -> str | None:
    if device in ("auto", "cpu") or device.startswith("cuda"):
        return None
    return f"must be auto, cpu or cuda[:N], got {device!r}"


def _zero_or_more(value: float | None) -> str | None:
    return None if value is None or value >= 0 else f"must be 0 or more, got {value:g}"


def _seconds_above_zero(value: float | None) -> str | None:
    return None if value is None or value > 0 else f"must be above 0 seconds, got {value:g}"


def _multiple_of_32(value: int) -> str | None:
    return None if value >= 32 and value % 32 == 0 else f"must be a multiple of 32, got {value}"


def _flip_or_none(value: str | None) -> str | None:
    return None if value in (None, "flip") else f"must be 'flip' if given, got {value!r}"


@dataclass(frozen=True)
class ExtractConfig:
    """What `harmcache extract` and `harmcache.extract()` accept. Checked when made: a bad
    value is a `UsageError` naming the option."""

    extractors: str | Sequence[str] = setting(
        ",".join(DEFAULT_EXTRACTORS), help="Comma-separated extractors."
    )
    """Registry names, comma-separated or as a sequence; held as a tuple."""
    frames: int | None = setting(
        None,
        help="Frames sampled uniformly per video (CLIP, YOLO). [default: 32]",
        check=at_least(1),
    )
    fps: float | None = setting(
        None,
        help="Instead of --frames: CLIP and YOLO take one frame every 1/F seconds.",
        check=above(0),
    )
    windows: int | None = setting(
        None, help="SlowFast windows per video. [default: 4]", check=at_least(1)
    )
    window_every: float | None = setting(
        None,
        help="Instead of --windows: one SlowFast window every S seconds.",
        check=_seconds_above_zero,
    )
    pdq_fps: float = setting(
        1.0, help="Frames hashed per second by the pdq extractor (PDQ).", check=above(0)
    )
    device: str = setting("auto", help="auto, cpu, cuda or cuda:N.", check=check_device)
    batch_size: int = setting(
        16, help="Frames per forward pass (one video at a time).", check=at_least(1)
    )
    workers: int = setting(
        1, help="Decode worker processes (0 decodes inline).", check=_zero_or_more
    )
    shard_size: int = setting(8, help="Videos per committed shard.", check=at_least(1))
    weights_dir: str | Path | None = setting(None, help="Folder with yolov8n.pt, ViT-B-32.pt, ...")
    random_init: bool = setting(False, help="Seeded random weights.")
    seed: int = setting(0, help="Seed for --random-init.")
    tta: str | None = setting(
        None, help="'flip': average CLIP over mirrored frames.", check=_flip_or_none
    )
    yolo_imgsz: int = setting(640, help="YOLO input size (multiple of 32).", check=_multiple_of_32)
    slowfast_crop: int = setting(
        256, help="SlowFast centre crop (multiple of 32).", check=_multiple_of_32
    )
    slowfast_short_side: int = setting(256, help="SlowFast resize of the short side.")
    decode_short_side: int = setting(360, help="Downscale decoded frames to this short side.")
    engine: str = setting("local", help="local or ray.", check=one_of("local", "ray"))
    ray_address: str | None = setting(None, help="Ray cluster: auto or HOST:PORT.")
    gpus_per_worker: float | None = setting(
        None, help="GPUs per Ray actor (default 1 with CUDA).", check=_zero_or_more
    )

    def __post_init__(self) -> None:
        names = self.extractors
        if isinstance(names, str):
            names = [name.strip() for name in names.split(",")]
        object.__setattr__(self, "extractors", tuple(name for name in names if name))
        if self.weights_dir is not None and self.random_init:
            raise UsageError("--weights-dir and --random-init exclude each other")
        if self.frames is not None and self.fps is not None:
            raise UsageError(FRAMES_AND_FPS)
        if self.windows is not None and self.window_every is not None:
            raise UsageError(WINDOWS_AND_EVERY)
        validate(self)
        if self.slowfast_short_side < self.slowfast_crop:
            raise UsageError(
                f"SlowFast short side {self.slowfast_short_side} is smaller than its crop "
                f"{self.slowfast_crop}; raise --slowfast-short-side or lower --slowfast-crop"
            )
        self._check_extractors()

    def _check_extractors(self) -> None:
        if not self.extractors:
            raise UsageError(
                "no extractors chosen: use {param} yolo,clip,slowfast", parameter="extractors"
            )
        if len(set(self.extractors)) != len(self.extractors):
            raise UsageError(
                f"an extractor is named twice in {','.join(self.extractors)}",
                parameter="extractors",
            )
        for name in self.extractors:
            get_extractor(name)  # an unknown name says which ones there are

    def settings(self, device: str) -> ExtractSettings:
        """The extractor-facing settings on the resolved `device` (see `resolve_device`)."""
        return ExtractSettings(
            frames=DEFAULT_FRAMES if self.frames is None else self.frames,
            windows=DEFAULT_WINDOWS if self.windows is None else self.windows,
            fps=self.fps,
            window_every=self.window_every,
            pdq_fps=self.pdq_fps,
            batch_size=self.batch_size,
            device=device,
            tta=self.tta,
            weights=WeightsSource(
                random_init=self.random_init,
                seed=self.seed,
                weights_dir=Path(self.weights_dir) if self.weights_dir is not None else None,
            ),
            decode_short_side=self.decode_short_side,
            yolo_imgsz=self.yolo_imgsz,
            slowfast_crop=self.slowfast_crop,
            slowfast_short_side=self.slowfast_short_side,
            cpu_threads=_cpu_threads(device),
        )

    def gpus(self, device: str) -> float:
        """GPUs per Ray actor: as given, else one on CUDA and none on the CPU."""
        if self.gpus_per_worker is not None:
            return self.gpus_per_worker
        return 1.0 if device.startswith("cuda") else 0.0


def resolve_device(device: str, engine: str = "local") -> str:
    """The torch device to extract on. With Ray the GPUs are on the workers, not the driver."""
    import torch

    problem = check_device(device)
    if problem:
        raise UsageError("{param} " + problem, parameter="device")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and engine == "local" and not torch.cuda.is_available():
        raise UsageError(
            "{param} " + f"{device} asked for, but CUDA is not available here", parameter="device"
        )
    return device


def _cpu_threads(device: str) -> int:
    """This process's torch thread count, fixed for the run so that Ray actors (which start
    with one thread) compute the same numbers as a local run."""
    if device != "cpu":
        return 0
    import torch

    return torch.get_num_threads()
