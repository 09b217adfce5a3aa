"""The options of the stage-two commands, declared once: `TrainConfig` (`harmcache train`,
`harmcache.train()`), `EvaluateConfig` (`evaluate`) and `PredictConfig` (`predict`).

Each field carries its default, its one-line help and its check (`harmcache.options`); the
commands in `cli/` declare their options against these fields, so the command line and Python
cannot disagree. This module imports nothing heavy: the command line reads it to build its help.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harmcache.errors import UsageError
from harmcache.heads.registry import HEADS
from harmcache.options import at_least, setting, validate

DEFAULT_VAL_FRACTION = 0.15
DEFAULT_TEST_FRACTION = 0.15
DEFAULT_SEGMENTS = 8
"""Timeline parts per video for a head without snippet scores of its own: what `predict`
shows by default, and what `train --events` and `evaluate --events` localize with."""
CALIBRATIONS = ("isotonic", "sigmoid", "none")
"""`harmcache.calibration.METHODS`, and none (tests/train/test_config.py holds them equal)."""
HEAD_SHORTCUTS = ("epochs", "batch_size", "loss")
"""Head settings that have an option of their own; any other goes through `head_params`."""


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """Validation takes a share above 0, test one of 0 or more, and together below 1."""
    if not 0 < val_fraction < 1:
        raise UsageError(
            f"{{param}} must be above 0 and below 1, got {val_fraction:g}", parameter="val_fraction"
        )
    if not 0 <= test_fraction < 1:
        raise UsageError(
            f"{{param}} must be at least 0 and below 1, got {test_fraction:g}",
            parameter="test_fraction",
        )
    if val_fraction + test_fraction >= 1:
        raise UsageError(
            f"the validation ({val_fraction:g}) and test ({test_fraction:g}) fractions must sum "
            "below 1",
            parameter="val_fraction",
        )


def _calibration(v: str) -> str | None:
    return None if v in CALIBRATIONS else f"must be one of {', '.join(CALIBRATIONS)}, got {v!r}"


@dataclass(kw_only=True)
class TrainConfig:
    """How `train` fits a head: everything but the cache, the labels and the run directory."""

    head: str = setting("transformer", help=" | ".join(HEADS) + ".")
    features: list[str] | None = setting(
        None, help="Extractors to use, e.g. clip,yolo,slowfast (default: all cached)."
    )
    families: list[str] | None = setting(
        None, help="Pin a shard family by name when several fingerprints exist."
    )
    positive: list[str] | None = setting(
        None, help="Label names that mean harmful, e.g. harmful,violence."
    )
    split_from: Path | None = setting(
        None, help="Reuse this run's split; new videos are assigned by its rule."
    )
    seed: int = setting(0, help="Seeds the split and the head.")
    epochs: int | None = setting(
        None, help="Most epochs, for a head that trains in epochs (default: the head's).",
        check=at_least(1),
    )  # fmt: skip
    batch_size: int | None = setting(
        None, help="Videos per step, for a head that trains in batches (default: the head's).",
        check=at_least(1),
    )  # fmt: skip
    loss: str | None = setting(None, help="bce or focal, for a head with a loss (default bce).")
    val_fraction: float = setting(
        DEFAULT_VAL_FRACTION,
        help="Share for validation (early stopping, threshold).",
    )
    test_fraction: float = setting(
        DEFAULT_TEST_FRACTION,
        help="Share held out for the reported numbers (0: none).",
    )
    calibrate: str = setting(
        "isotonic", help="isotonic | sigmoid | none: score → probability map.", check=_calibration
    )
    head_params: dict[str, Any] | None = setting(
        None, help="Any head setting as KEY=VALUE (repeatable), e.g. d_model=64."
    )
    near_duplicates: str | None = setting(
        None,
        help="group | off: near-duplicate videos (pdq) share a side of the split "
        "(default: group when the cache has a pdq family).",
        check=lambda v: None if v in (None, "group", "off") else f"must be group or off, got {v!r}",
    )
    taxonomy: Path | None = setting(
        None, help="YAML parent: [child, ...]: a missing parent column is derived."
    )
    events: Path | None = setting(
        None, help="Events CSV: per-second AUROC/AP on validation and test at the end."
    )
    force: bool = setting(False, help="Replace --out if it exists.")

    def __post_init__(self) -> None:
        validate(self)
        check_fractions(self.val_fraction, self.test_fraction)

    def head_settings(self) -> dict[str, Any]:
        """The head's settings: the seed, `head_params`, and `epochs`, `batch_size` and `loss`
        when given, each checked against the settings the chosen head really has."""
        from harmcache.heads.base import head_class, setting_names

        known = setting_names(head_class(self.head))
        settings = {"seed": self.seed, **(self.head_params or {})}
        for name in HEAD_SHORTCUTS:
            value = getattr(self, name)
            if value is None:
                continue
            if name not in known:
                raise UsageError(
                    f"{{param}} is not a setting of the {self.head} head (its settings: "
                    f"{', '.join(sorted(known))})",
                    parameter=name,
                )
            if (self.head_params or {}).get(name, value) != value:
                raise UsageError(
                    f"{{param}} {value} and head_params {name}={self.head_params[name]} differ; "
                    "give one",
                    parameter=name,
                )
            settings[name] = value
        return settings


@dataclass(kw_only=True)
class EvaluateConfig:
    """Which videos `evaluate` measures a run on, besides the run itself."""

    labels: Path | None = setting(None, help="Held-out labels (CSV or class folders).")
    cache_dir: Path | None = setting(None, help="Cache holding those videos (default: the run's).")
    positive: list[str] | None = setting(None, help="Label names that mean harmful.")
    subset: str | None = setting(
        None,
        help="val | test (default: test if the run has one).",
        check=lambda v: None if v in (None, "val", "test") else f"must be val or test, got {v!r}",
    )
    events: Path | None = setting(
        None, help="Events CSV (path or video_id, start, end): per-second AUROC/AP."
    )

    def __post_init__(self) -> None:
        validate(self)
        if self.subset and self.labels:
            raise UsageError(
                "{param} and labels exclude each other: a run's own split, or the labelled videos",
                parameter="subset",
            )


@dataclass(kw_only=True)
class PredictConfig:
    """How `predict` extracts and scores new videos with a run."""

    cache_dir: Path | None = setting(None, help="Cache to extract into (default: the run's).")
    device: str = setting("cpu", help="cpu, cuda or cuda:N for extraction.")
    weights_dir: Path | None = setting(None, help="Folder with backbone weights.")
    segments: int = setting(
        DEFAULT_SEGMENTS,
        help="Timeline segments per video (0: none); the mil head uses its snippets.",
        check=at_least(0),
    )
    bank: Path | None = setting(
        None, help="Hash bank: report a known-content match before the model's score."
    )

    def __post_init__(self) -> None:
        validate(self)


def keywords(config: Any) -> dict[str, Any]:
    """A config's fields as keyword arguments of the library function it configures."""
    return dict(vars(config))
