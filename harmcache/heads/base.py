"""The head contract: a scikit-learn estimator every head implements, with its checks and saving.

A head is a binary classifier over `SequenceData` that follows scikit-learn's conventions:

- its settings are keyword arguments of `__init__`, stored as given and checked in `fit`, so
  `clone`, `get_params` and `set_params` work;
- `fit(X, y=None, *, eval_set=None)` returns self. X is a `SequenceData` (it has `len()` and
  integer-array indexing, so `cross_val_score` can split it); y is a 0/1 array, X's own labels
  when left out. With `eval_set` the head stops early on it; without, it trains the configured
  epochs or rounds;
- learned state ends in `_`; `classes_` is `[0, 1]` (safe, harmful);
- `predict_proba` gives (n, 2); `predict` cuts at `threshold_` when set (`load_run` sets it
  from the run's threshold.json) or else at 0.5; both raise `NotFittedError` before `fit`.

Heads that only need pooled statistics (LightGBM, logreg: `pooled_stats` set) also take a
`PooledData` for X, so stage two can pool shard by shard and never hold the sequences.

`save(dir)` writes `head.json` (name, settings, learned facts) plus the head's own files;
`load_head(dir)` gives the fitted head back. Heads depend on nothing but `SequenceData`, the
metrics and the errors: never on the cache or the training pipeline.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from harmcache import metrics
from harmcache.decisions import table
from harmcache.decisions.operating_point import DEFAULT_THRESHOLD, OperatingPoint
from harmcache.errors import DataError, UsageError
from harmcache.heads.data import PooledData, SequenceData, check_finite
from harmcache.heads.registry import HEADS

log = logging.getLogger(__name__)

HEAD_FILE = "head.json"


@dataclass
class EpochReport:
    """What one epoch (or a whole non-iterative fit) did; the validation fields are None (and
    `rows` empty) when the head was fitted without an `eval_set`."""

    epoch: int
    epochs: int
    train_loss: float
    seconds: float
    val_loss: float | None = None
    rows: list[dict] = field(default_factory=list)
    """`table.threshold_rows` at 0.30..0.70."""
    best_f1: float | None = None
    """Best F1 over the 0.01..0.99 grid."""
    best_threshold: float | None = None
    monitor: float | None = None
    """The early-stopping value this epoch."""
    improved: bool = False
    localization: dict | None = None
    """Per-second segment AUROC/AP of the validation timelines against an events file, when
    training was given one (`train --events`); filled by the epoch callback."""

    @classmethod
    def validated(
        cls,
        epoch: int,
        epochs: int,
        train_loss: float,
        seconds: float,
        *,
        y_val: np.ndarray,
        scores: np.ndarray,
        val_loss: float,
        monitor: float,
        improved: bool,
    ) -> EpochReport:
        """A report with the validation table and best F1 computed from `scores`."""
        f1, threshold = metrics.best_f1(y_val, scores)
        rows = table.threshold_rows(y_val, scores)
        return cls(
            epoch, epochs, train_loss, seconds, val_loss, rows, f1, threshold, monitor, improved
        )

    @classmethod
    def single_fit(
        cls,
        train_loss: float,
        seconds: float,
        val: tuple | None = None,
        scores: np.ndarray | None = None,
        val_loss: float | None = None,
    ) -> EpochReport:
        """The one report of a head fitted in one go (LightGBM, logreg): its training loss,
        and the validation table when a validation set was given."""
        if val is None:
            return cls(1, 1, train_loss, seconds)
        return cls.validated(1, 1, train_loss, seconds, y_val=val[1], scores=scores,
                             val_loss=val_loss, monitor=val_loss, improved=True)  # fmt: skip

    def format(self) -> str:
        val = "" if self.val_loss is None else f"  val loss {self.val_loss:.4f}"
        head = (
            f"epoch {self.epoch}/{self.epochs}  train loss {self.train_loss:.4f}{val}  "
            f"({self.seconds:.1f}s)"
        )
        if not self.rows:
            return head
        best = table.best_row(self.rows)
        tail = (
            f"  best in table: F1 {best['f1']:.4f} at {best['threshold']:.2f};"
            f" best on 0.01 grid: F1 {self.best_f1:.4f} at {self.best_threshold:.2f}"
            + ("  *" if self.improved else "")
        )
        lines = [head, table.format_rows(self.rows, best), tail]
        if self.localization is not None:
            lines.append(localization_line(self.localization))
        return "\n".join(lines)

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
            **({} if self.localization is None else {"localization": self.localization}),
        }


def localization_line(loc: dict) -> str:
    """'  per second on validation: AUROC 0.97, AP 0.91 (412 s, 38 harmful)'."""
    auroc, ap = loc.get("segment_auroc"), loc.get("segment_ap")
    shown = ", ".join(
        f"{name} {value:.4f}" if value is not None else f"{name} n/a"
        for name, value in (("AUROC", auroc), ("AP", ap))
    )
    return (
        f"  per second on validation: {shown} ({loc.get('n_seconds', 0)} s, "
        f"{loc.get('n_positive_seconds', 0)} harmful)"
    )


EpochCallback = Callable[[EpochReport], None]
Validation = tuple[SequenceData, np.ndarray]
"""A validation set: the videos and their 0/1 labels."""


def log_epoch(report: EpochReport) -> None:
    """The default epoch callback: the table goes to the log."""
    log.info("%s", report.format())


class Head(ClassifierMixin, BaseEstimator):
    """Binary classifier over cached feature sequences (see the module docstring)."""

    name: ClassVar[str]
    pooled_stats: tuple[str, ...] | None = None
    """The statistics a head pools over time when that is all it uses (then X may be a
    `PooledData` pooled with them); None for heads that read the sequences."""

    def fit(
        self,
        X: SequenceData,
        y: np.ndarray | None = None,
        *,
        eval_set: SequenceData | tuple[SequenceData, np.ndarray] | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> Head:
        """Learn from the videos `X` and their labels `y` (default: `X.labels`).

        `eval_set`, a labelled `SequenceData` or an `(X_val, y_val)` pair, drives early
        stopping; without it the head trains its configured epochs or rounds. `on_epoch`
        receives each epoch's report (default: logged). Returns self."""
        self._check_params()
        X, y = check_labelled(X, y, "X", self._inputs())
        val = None
        if eval_set is not None:
            val = check_labelled(*_as_pair(eval_set), "eval_set", self._inputs())
        self._forget_learned()
        self.dims_ = X.dims
        self._fit(X, y, val, on_epoch or log_epoch)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: SequenceData) -> np.ndarray:
        """(n, 2): each video's probability of being safe (column 0) and harmful (column 1)."""
        harmful = self._harmful_proba(self._check_input(X))
        return np.column_stack([1.0 - harmful, harmful])

    def predict(self, X: SequenceData) -> np.ndarray:
        """(n,) 0/1: harmful where the probability reaches `threshold_` (else 0.5)."""
        harmful = self.predict_proba(X)[:, 1]
        return OperatingPoint(getattr(self, "threshold_", DEFAULT_THRESHOLD)).apply(harmful)

    def _forget_learned(self) -> None:
        """Drop every learned attribute: a refit starts from nothing (no stale threshold_)."""
        for learned in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
            delattr(self, learned)

    # --- what each head provides --------------------------------------------------------------
    def _check_params(self) -> None:
        """Raise UsageError for an invalid setting (called by `fit` and `make_head`)."""

    def _fit(
        self, X: SequenceData, y: np.ndarray, val: Validation | None, on_epoch: EpochCallback
    ) -> None:
        raise NotImplementedError

    def _harmful_proba(self, X: SequenceData) -> np.ndarray:
        """(n,) probability of harmful, for checked input."""
        raise NotImplementedError

    def _save_state(self, folder: Path) -> None:
        raise NotImplementedError

    def _load_state(self, folder: Path, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        """Learned facts that `_load_state` needs beyond the settings (best epoch, ...)."""
        return {}

    # --- saving -------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """Write the fitted head into `folder`."""
        check_is_fitted(self, ("classes_", "dims_"))
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._save_state(folder)
        state = {"dims": self.dims_, **self._state()}
        meta = {"head": self.name, "config": self.get_params(), "state": state}
        (folder / HEAD_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> Head:
        """A fitted head from a folder written by `save`."""
        folder = Path(folder)
        meta = json.loads((folder / HEAD_FILE).read_text())
        head = cls(**meta["config"])
        state = meta.get("state", {})
        head.dims_ = {k: int(v) for k, v in state["dims"].items()}
        head._load_state(folder, state)
        head.classes_ = np.array([0, 1])
        return head

    def _inputs(self) -> tuple[type, ...]:
        return (SequenceData,) if self.pooled_stats is None else (SequenceData, PooledData)

    def _check_input(self, X: SequenceData) -> SequenceData:
        """Fitted, given a SequenceData with finite features, with the modalities and widths it
        was fitted on."""
        check_is_fitted(self, ("classes_", "dims_"))
        if not isinstance(X, self._inputs()):
            raise UsageError(f"X must be a {_kinds(self._inputs())}, got {type(X).__name__}")
        if X.dims != self.dims_:
            raise UsageError(
                f"the {self.name} head was fitted on features {self.dims_}, got {X.dims}"
            )
        check_finite(X, "X")
        return X


def check_labelled(
    X: Any, y: Any, what: str, kinds: tuple[type, ...] = (SequenceData,)
) -> Validation:
    """`X` as one of `kinds`, holding videos with finite features, and `y` (default `X.labels`)
    as int64 0/1 with both classes."""
    if not isinstance(X, kinds):
        raise UsageError(f"{what} must be a {_kinds(kinds)}, got {type(X).__name__}")
    if len(X) == 0:
        raise DataError(f"{what} holds no videos; a head needs some of each class to learn from")
    if not any(X.dims.values()):
        raise DataError(f"{what} has 0 features (modality widths {X.dims}); a head needs some")
    if y is None:
        y = X.labels
    if y is None:
        raise UsageError(f"{what} has no labels: pass y, or build the SequenceData with labels")
    y = np.asarray(y)
    if y.shape != (len(X),):
        raise UsageError(f"{what} holds {len(X)} videos but the labels have shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise UsageError(f"{what} labels must be 0 (safe) or 1 (harmful)")
    if len(np.unique(y)) < 2:
        raise DataError(f"{what} needs both classes; all {len(y)} videos are labelled {y[0]}")
    check_finite(X, what)
    return X, y.astype(np.int64)


def _kinds(kinds: tuple[type, ...]) -> str:
    return " or a ".join(k.__name__ for k in kinds)


def _as_pair(eval_set: Any) -> tuple[Any, Any]:
    if isinstance(eval_set, (SequenceData, PooledData)):
        return eval_set, None
    if isinstance(eval_set, tuple) and len(eval_set) == 2:
        return eval_set
    raise UsageError("eval_set must be a labelled SequenceData or an (X_val, y_val) pair")


def head_class(name: str) -> type[Head]:
    """The head class registered as `name`."""
    try:
        module, cls = HEADS[name].split(":")
    except KeyError:
        raise UsageError(f"unknown head {name!r}; choose from {', '.join(HEADS)}") from None
    return getattr(importlib.import_module(module), cls)


def make_head(name: str, **settings: Any) -> Head:
    """A new, unfitted head of kind `name` (transformer, lightgbm, logreg); its settings are
    checked now, so a bad one fails before any data is loaded."""
    cls = head_class(name)
    known = set(setting_names(cls))
    unknown = sorted(set(settings) - known)
    if unknown:
        raise UsageError(
            f"unknown setting(s) {', '.join(unknown)} for this head; "
            f"known: {', '.join(sorted(known))}"
        )
    head = cls(**settings)
    head._check_params()
    return head


def load_head(folder: str | Path) -> Head:
    """The fitted head saved in `folder`, whatever its kind."""
    path = Path(folder) / HEAD_FILE
    if not path.exists():
        raise UsageError(f"{folder} holds no saved head ({HEAD_FILE} is missing)")
    try:
        kind = json.loads(path.read_text(encoding="utf-8"))["head"]
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise UsageError(f"{path} is damaged ({type(exc).__name__}: {exc}); retrain") from None
    return head_class(kind).load(folder)


def setting_names(cls: type[Head]) -> list[str]:
    """The keyword settings of a head class (its `__init__` parameters)."""
    return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


def parse_params(name: str, pairs: list[str]) -> dict[str, Any]:
    """`["lr=1e-4", "loss=focal"]` → typed settings for head `name` (from its `__init__`)."""
    cls = head_class(name)
    hints = typing.get_type_hints(cls.__init__)
    known = setting_names(cls)
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in known:
            raise UsageError(
                f"--param {pair!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(known))}"
            )
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
