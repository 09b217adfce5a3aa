"""The head contract: a scikit-learn estimator every head implements, with its checks and saving.

A head scores videos over `SequenceData`, for one moderation category or several at once, and
follows scikit-learn's conventions:

- its settings are keyword arguments of `__init__`, stored as given and checked in `fit`, so
  `clone`, `get_params` and `set_params` work;
- `fit(X, y=None, *, eval_set=None)` returns self. X is a `SequenceData` (it has `len()` and
  integer-array indexing, so `cross_val_score` can split it); y is X's own labels when left
  out, either (n,) 0/1 (one category) or (n, K) 0/1 with NaN where a category is not labelled
  for a video (masked, never read as 0; see `harmcache.heads.targets`). With `eval_set` the
  head stops early on it; without, it trains the configured epochs or rounds;
- learned state ends in `_`; `classes_` is `[0, 1]` (safe, harmful); `n_outputs_` is K, the
  number of categories (1 for a 1-D y);
- `predict_categories` gives (n, K) probabilities, one column per category. For K = 1,
  `predict_proba` gives (n, 2) and `predict` cuts at `threshold_` when set (`load_run` sets it
  from the run's threshold.json) or else at 0.5; for K > 1 both raise UsageError, since one
  pair of columns or one threshold cannot stand for several categories. All raise
  `NotFittedError` before `fit`.

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
import types
import typing
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from harmcache.decisions.operating_point import DEFAULT_THRESHOLD, OperatingPoint
from harmcache.errors import DataError, UsageError
from harmcache.heads.data import PooledData, SequenceData, check_finite
from harmcache.heads.registry import HEADS
from harmcache.heads.report import EpochCallback, log_epoch
from harmcache.heads.report import EpochReport as EpochReport  # re-exported: the heads' API
from harmcache.heads.targets import check_targets

HEAD_FILE = "head.json"


Validation = tuple[SequenceData, np.ndarray]
"""A validation set: the videos and their (n, K) labels (`check_targets`)."""


class Head(ClassifierMixin, BaseEstimator):
    """Classifier over cached feature sequences, for one category or several (see the module
    docstring)."""

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
        """Learn from the videos `X` and their labels `y` (default: `X.labels`): (n,) 0/1, or
        (n, K) 0/1/NaN for K categories.

        `eval_set`, a labelled `SequenceData` or an `(X_val, y_val)` pair with the same
        categories, drives early stopping; without it the head trains its configured epochs or
        rounds. `on_epoch` receives each epoch's report (default: logged). Returns self."""
        self._check_params()
        X, y = check_labelled(X, y, "X", self._inputs())
        val = None
        if eval_set is not None:
            val = check_labelled(*_as_pair(eval_set), "eval_set", self._inputs(), training=False)
            check_same_categories(y, val[1])
        self._forget_learned()
        self.dims_ = X.dims
        self.n_outputs_ = y.shape[1]
        self._fit(X, y, val, on_epoch or log_epoch)
        self.classes_ = np.array([0, 1])
        return self

    def predict_categories(self, X: SequenceData) -> np.ndarray:
        """(n, K): each video's probability of being harmful in each category (column k is
        column k of the labels it was fitted on)."""
        return self._category_proba(self._check_input(X))

    def predict_proba(self, X: SequenceData) -> np.ndarray:
        """(n, 2): each video's probability of being safe (column 0) and harmful (column 1).
        One-category heads only: a head fitted on K > 1 categories raises UsageError (use
        `predict_categories`)."""
        X = self._check_input(X)
        if self.n_outputs_ != 1:
            raise UsageError(
                f"this {self.name} head scores {self.n_outputs_} categories; predict_proba and "
                "predict are for one category: use predict_categories(X) for the "
                f"(n, {self.n_outputs_}) probabilities"
            )
        harmful = self._category_proba(X)[:, 0]
        return np.column_stack([1.0 - harmful, harmful])

    def predict(self, X: SequenceData) -> np.ndarray:
        """(n,) 0/1: harmful where the probability reaches `threshold_` (else 0.5). One-category
        heads only, as `predict_proba`."""
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

    def _category_proba(self, X: SequenceData) -> np.ndarray:
        """(n, K) probability of harmful in each category, for checked input."""
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
        state = {"dims": self.dims_, "n_outputs": self.n_outputs_, **self._state()}
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
        head.n_outputs_ = int(state.get("n_outputs", 1))  # heads saved before categories: one
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
    X: Any, y: Any, what: str, kinds: tuple[type, ...] = (SequenceData,), *, training: bool = True
) -> Validation:
    """`X` as one of `kinds`, holding videos with finite features, and `y` (default `X.labels`)
    as the (n, K) float64 0/1/NaN labels of `check_targets` (which says what `training`
    demands of the classes)."""
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
    if y.ndim not in (1, 2) or len(y) != len(X) or y.size == 0:
        raise UsageError(
            f"{what} holds {len(X)} videos but the labels have shape {y.shape}; expected "
            f"({len(X)},) or ({len(X)}, categories)"
        )
    y = check_targets(y, what, training=training)
    check_finite(X, what)
    return X, y


def check_same_categories(y: np.ndarray, y_val: np.ndarray) -> None:
    """The validation labels have one column per training category."""
    if y_val.shape[1] != y.shape[1]:
        raise UsageError(
            f"eval_set has labels for {y_val.shape[1]} categories, X for {y.shape[1]}; "
            "they must be the same categories in the same columns"
        )


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
