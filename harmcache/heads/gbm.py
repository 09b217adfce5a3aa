"""LightGBM on pooled statistics: mean, std, max and min over time of every modality's rows
(pooling to a fixed size is the simple answer to variable-length clips; see
docs/design-notes.md#variable-length-videos)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from harmcache.errors import UsageError
from harmcache.heads.base import EpochCallback, EpochReport, Head, Validation
from harmcache.heads.data import PooledData, SequenceData, pooled_statistics

MODEL_FILE = "model.txt"
STATS = ("mean", "std", "max", "min")


class LightGBMHead(Head):
    """Gradient-boosted trees on pooled per-modality statistics.

    Parameters
    ----------
    n_estimators : most boosting rounds; with an `eval_set`, early stopping usually ends far
        sooner; without one, all of them are trained.
    learning_rate, num_leaves : as in LightGBM.
    min_child_samples : small, because labelled video sets are hundreds to thousands of videos,
        not millions of rows (capped further for tiny training sets).
    feature_fraction : columns sampled per tree; the pooled vector is ~12,000 wide with all
        three backbones.
    early_stopping_rounds : stop when validation log-loss has not improved for this many rounds.
    stats : statistics pooled over time, comma-separated (mean,std,max,min).
    seed : LightGBM's seed.
    num_threads : fixed so results do not depend on the machine's core count; one, because
        OpenMP threads on a shared 2-core machine cost far more than they gain. Raise it on a
        dedicated machine.
    """

    name = "lightgbm"

    def __init__(
        self,
        *,
        n_estimators: int = 1000,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 10,
        feature_fraction: float = 0.5,
        early_stopping_rounds: int = 50,
        stats: str = "mean,std,max,min",
        seed: int = 0,
        num_threads: int = 1,
    ):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.early_stopping_rounds = early_stopping_rounds
        self.stats = stats
        self.seed = seed
        self.num_threads = num_threads

    def _check_params(self) -> None:
        bad = set(self.stats.split(",")) - set(STATS)
        if bad:
            raise UsageError(f"stats must be among mean,std,max,min; got {', '.join(sorted(bad))}")
        if self.n_estimators < 1 or self.num_threads < 1:
            raise UsageError("n_estimators and num_threads must be at least 1")

    @property
    def pooled_stats(self) -> tuple[str, ...]:
        return tuple(self.stats.split(","))

    def _features(self, X: SequenceData | PooledData) -> np.ndarray:
        if isinstance(X, PooledData):
            return X.columns(self.pooled_stats, "X")
        return pooled_statistics(X, self.pooled_stats, order=sorted(self.dims_))[0]

    def _params(self, n_pos: int, n_neg: int) -> dict[str, Any]:
        return {
            "objective": "binary",
            "metric": "binary_logloss",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            # A tiny training set (a pilot, the demo) must still be able to split at all.
            "min_child_samples": min(self.min_child_samples, max(2, (n_pos + n_neg) // 4)),
            "feature_fraction": self.feature_fraction,
            "scale_pos_weight": n_neg / max(n_pos, 1),
            # Same input, same trees: the documented recipe for reproducible LightGBM.
            "deterministic": True,
            "force_row_wise": True,
            "seed": self.seed,
            "num_threads": self.num_threads,
            "verbosity": -1,
        }

    def _fit(
        self, X: SequenceData, y: np.ndarray, val: Validation | None, on_epoch: EpochCallback
    ) -> None:
        import lightgbm as lgb

        start = time.perf_counter()
        n_pos = int(y.sum())
        dtrain = lgb.Dataset(self._features(X), label=y, free_raw_data=True)
        sets, names, callbacks = [dtrain], ["train"], []
        if val is not None:
            sets.append(lgb.Dataset(self._features(val[0]), label=val[1], reference=dtrain))
            names.append("val")
            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        evals: dict = {}
        self.booster_ = lgb.train(
            self._params(n_pos, len(y) - n_pos),
            dtrain,
            num_boost_round=self.n_estimators,
            valid_sets=sets,
            valid_names=names,
            callbacks=[*callbacks, lgb.record_evaluation(evals)],
        )
        self.best_iteration_ = int(self.booster_.best_iteration or self.booster_.num_trees())
        i = self.best_iteration_ - 1
        train_loss = float(evals["train"]["binary_logloss"][i])
        if val is None:
            on_epoch(EpochReport.single_fit(train_loss, time.perf_counter() - start))
            return
        scores = self._harmful_proba(val[0])
        val_loss = float(evals["val"]["binary_logloss"][i])
        seconds = time.perf_counter() - start
        on_epoch(EpochReport.single_fit(train_loss, seconds, val, scores, val_loss))

    def _harmful_proba(self, X: SequenceData) -> np.ndarray:
        x = self._features(X)
        return self.booster_.predict(x, num_iteration=self.best_iteration_).astype(np.float64)

    def _state(self) -> dict[str, Any]:
        return {"best_iteration": self.best_iteration_}

    def _save_state(self, folder: Path) -> None:
        self.booster_.save_model(str(folder / MODEL_FILE), num_iteration=self.best_iteration_)

    def _load_state(self, folder: Path, state: dict[str, Any]) -> None:
        import lightgbm as lgb

        self.best_iteration_ = int(state["best_iteration"])
        self.booster_ = lgb.Booster(model_file=str(folder / MODEL_FILE))
