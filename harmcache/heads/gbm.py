"""LightGBM on pooled statistics: mean, std, max and min over time of every modality's rows
(pooling to a fixed size is the simple answer to variable-length clips; see
docs/design-notes.md#variable-length-videos).

With K categories the head holds K boosters, one per category, each trained on that category's
labelled videos and stopped early on its labelled validation videos; one category is one
booster, the same code."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from harmcache.errors import UsageError
from harmcache.heads.base import EpochCallback, EpochReport, Head, Validation
from harmcache.heads.data import PooledData, SequenceData, pooled_statistics
from harmcache.heads.targets import labelled

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
    early_stopping_rounds : stop when validation log-loss has not improved for this many rounds
        (each category on its own labelled validation videos).
    stats : statistics pooled over time, comma-separated (mean,std,max,min).
    seed : LightGBM's seed.
    num_threads : fixed so results do not depend on the machine's core count; one, because
        OpenMP threads on a shared 2-core machine cost far more than they gain. Raise it on a
        dedicated machine.

    Learned: `boosters_` and `best_iterations_`, one per category (`n_outputs_` of them).
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
        start = time.perf_counter()
        x = self._features(X)
        x_val = None if val is None else self._features(val[0])
        self.boosters_, self.best_iterations_ = [], []
        train_loss, val_loss = [], []
        for k in range(y.shape[1]):
            booster, evals = self._fit_category(x, y, x_val, None if val is None else val[1], k)
            self.boosters_.append(booster)
            self.best_iterations_.append(int(booster.best_iteration or booster.num_trees()))
            i = self.best_iterations_[-1] - 1
            train_loss.append(float(evals["train"]["binary_logloss"][i]))
            if "val" in evals:
                val_loss.append(float(evals["val"]["binary_logloss"][i]))
        # One report for the whole fit; the losses are means over the categories.
        if val is None:
            seconds = time.perf_counter() - start
            on_epoch(EpochReport.single_fit(float(np.mean(train_loss)), seconds))
            return
        scores = self._category_proba(val[0])
        seconds = time.perf_counter() - start
        report = EpochReport.single_fit(
            float(np.mean(train_loss)), seconds, val, scores, float(np.mean(val_loss))
        )
        on_epoch(report)

    def _fit_category(
        self,
        x: np.ndarray,
        y: np.ndarray,
        x_val: np.ndarray | None,
        y_val: np.ndarray | None,
        k: int,
    ) -> tuple[Any, dict]:
        """Category `k`'s booster, trained on its labelled rows and stopped early on its
        labelled validation rows (all rounds when it has none), and its evaluation record."""
        import lightgbm as lgb

        rows, labels = labelled(y, k)
        n_pos = int(labels.sum())
        dtrain = lgb.Dataset(_rows(x, rows), label=labels, free_raw_data=True)
        sets, names, callbacks = [dtrain], ["train"], []
        val_rows, val_labels = labelled(y_val, k) if y_val is not None else ([], [])
        if len(val_rows):
            sets.append(lgb.Dataset(_rows(x_val, val_rows), label=val_labels, reference=dtrain))
            names.append("val")
            callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        evals: dict = {}
        booster = lgb.train(
            self._params(n_pos, len(labels) - n_pos),
            dtrain,
            num_boost_round=self.n_estimators,
            valid_sets=sets,
            valid_names=names,
            callbacks=[*callbacks, lgb.record_evaluation(evals)],
        )
        return booster, evals

    def _category_proba(self, X: SequenceData) -> np.ndarray:
        x = self._features(X)
        return np.column_stack(
            [
                booster.predict(x, num_iteration=best).astype(np.float64)
                for booster, best in zip(self.boosters_, self.best_iterations_)
            ]
        )

    def _state(self) -> dict[str, Any]:
        return {"best_iterations": self.best_iterations_}

    def _save_state(self, folder: Path) -> None:
        for k, (booster, best) in enumerate(zip(self.boosters_, self.best_iterations_)):
            booster.save_model(str(folder / model_file(k)), num_iteration=best)

    def _load_state(self, folder: Path, state: dict[str, Any]) -> None:
        import lightgbm as lgb

        # One number in heads saved before categories.
        self.best_iterations_ = [
            int(i) for i in state.get("best_iterations", [state.get("best_iteration")])
        ]
        self.boosters_ = [
            lgb.Booster(model_file=str(folder / model_file(k))) for k in range(self.n_outputs_)
        ]


def model_file(k: int) -> str:
    """Category `k`'s booster file: model.txt for the first (as heads saved before categories
    wrote it), model-1.txt, model-2.txt, ... for the others."""
    return MODEL_FILE if k == 0 else f"model-{k}.txt"


def _rows(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """`x[rows]`, without a copy when every row is there."""
    return x if len(rows) == len(x) else x[rows]
