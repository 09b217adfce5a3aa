"""The head contract and its registry.

A head is a binary classifier over `SequenceData`. Like a scikit-learn estimator it takes its
settings as keyword arguments (held in a dataclass config) and does no work in `__init__`;
`fit` returns `self` and learned state ends in `_`. `save(dir)` writes `head.json` (name, config,
input dims) plus the head's own files; `load_head(dir)` gives the fitted head back.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harmcache import metrics
from harmcache.errors import UsageError
from harmcache.heads.data import SequenceData

log = logging.getLogger(__name__)

# name -> "module:Class"; imported on demand so that LightGBM runs never import torch.
HEADS: dict[str, str] = {
    "transformer": "harmcache.heads.transformer:TransformerHead",
    "lightgbm": "harmcache.heads.gbm:LightGBMHead",
    "logreg": "harmcache.heads.logreg:LogRegHead",
}
HEAD_FILE = "head.json"


@dataclass
class EpochReport:
    """What one epoch (or a whole non-iterative fit) did on the validation set."""

    epoch: int
    epochs: int
    train_loss: float
    val_loss: float
    rows: list[dict]
    """`metrics.threshold_rows` at 0.30..0.70."""
    best_f1: float
    """Best F1 over the 0.01..0.99 grid."""
    best_threshold: float
    monitor: float
    """The early-stopping value this epoch."""
    improved: bool
    seconds: float

    def format(self) -> str:
        best = metrics.best_row(self.rows)
        head = (
            f"epoch {self.epoch}/{self.epochs}  train loss {self.train_loss:.4f}  "
            f"val loss {self.val_loss:.4f}  ({self.seconds:.1f}s)"
        )
        tail = (
            f"  best in table: F1 {best['f1']:.4f} at {best['threshold']:.2f};"
            f" best on 0.01 grid: F1 {self.best_f1:.4f} at {self.best_threshold:.2f}"
            + ("  *" if self.improved else "")
        )
        return "\n".join([head, metrics.format_rows(self.rows, best), tail])

    def to_json(self) -> dict:
        return {
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "best_f1": self.best_f1,
            "best_threshold": self.best_threshold,
            "monitor": self.monitor,
            "improved": self.improved,
            "seconds": self.seconds,
        }


EpochCallback = Callable[[EpochReport], None]


def log_epoch(report: EpochReport) -> None:
    """The default epoch callback: the table goes to the log."""
    log.info("%s", report.format())


class Head(ABC):
    """Binary classifier over cached feature sequences."""

    name: ClassVar[str]
    config_class: ClassVar[type]

    def __init__(self, **settings: Any):
        self.config = make_config(self.config_class, settings)

    def get_params(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    @abstractmethod
    def fit(
        self, train: SequenceData, val: SequenceData, *, on_epoch: EpochCallback | None = None
    ) -> Head:
        """Learn from `train`; `val` drives early stopping. `on_epoch` receives each epoch's
        report (default: logged). Returns self."""

    @abstractmethod
    def predict_proba(self, data: SequenceData) -> np.ndarray:
        """(N,) probability that each video is harmful."""

    @abstractmethod
    def _save_state(self, folder: Path) -> None: ...

    @abstractmethod
    def _load_state(self, folder: Path, meta: dict[str, Any]) -> None: ...

    def _meta(self) -> dict[str, Any]:
        """Learned facts that `_load_state` needs beyond the config (input dims, best epoch)."""
        return {}

    def save(self, folder: str | Path) -> None:
        """Write the fitted head into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._save_state(folder)
        meta = {"head": self.name, "config": self.get_params(), "state": self._meta()}
        (folder / HEAD_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> Head:
        """A fitted head from a folder written by `save`."""
        folder = Path(folder)
        meta = json.loads((folder / HEAD_FILE).read_text())
        head = cls(**meta["config"])
        head._load_state(folder, meta.get("state", {}))
        return head

    def check_data(self, data: SequenceData, dims: dict[str, int]) -> None:
        """The modalities and widths the head was fitted on must be the ones given."""
        if data.dims != dims:
            raise UsageError(f"the {self.name} head was fitted on features {dims}, got {data.dims}")


def head_class(name: str) -> type[Head]:
    try:
        module, cls = HEADS[name].split(":")
    except KeyError:
        raise UsageError(f"unknown head {name!r}; choose from {', '.join(HEADS)}") from None
    return getattr(importlib.import_module(module), cls)


def make_head(name: str, **settings: Any) -> Head:
    """A new, unfitted head of kind `name` (transformer, lightgbm, logreg)."""
    return head_class(name)(**settings)


def load_head(folder: str | Path) -> Head:
    """The fitted head saved in `folder`, whatever its kind."""
    path = Path(folder) / HEAD_FILE
    if not path.exists():
        raise UsageError(f"{folder} holds no saved head ({HEAD_FILE} is missing)")
    return head_class(json.loads(path.read_text())["head"]).load(folder)


def make_config(config_class: type, settings: dict[str, Any]) -> Any:
    """The config dataclass from keyword settings; unknown names are a UsageError."""
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise UsageError(
            f"unknown setting(s) {', '.join(unknown)} for this head; "
            f"known: {', '.join(sorted(known))}"
        )
    return config_class(**settings)


def parse_params(name: str, pairs: list[str]) -> dict[str, Any]:
    """`["lr=1e-4", "loss=focal"]` → typed settings for head `name` (from its config's types)."""
    config_class = head_class(name).config_class
    hints = typing.get_type_hints(config_class)
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in hints:
            known = ", ".join(sorted(hints))
            raise UsageError(f"--param {pair!r}: expected KEY=VALUE with KEY one of {known}")
        out[key] = _convert(raw.strip(), hints[key], key)
    return out


def _convert(raw: str, hint: Any, key: str) -> Any:
    options = typing.get_args(hint) if _is_union(hint) else (hint,)
    if raw.lower() in ("none", "null") and type(None) in options:
        return None
    for kind in options:
        if kind is type(None):
            continue
        try:
            if kind is bool:
                if raw.lower() in ("1", "true", "yes"):
                    return True
                if raw.lower() in ("0", "false", "no"):
                    return False
                raise ValueError(raw)
            if kind in (int, float, str):
                return kind(raw)
        except ValueError:
            continue
    raise UsageError(f"--param {key}={raw}: cannot read {raw!r} as {hint}")


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)
