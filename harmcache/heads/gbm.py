"""LightGBM on pooled statistics: mean, std, max and min over time of every modality's rows
(report 003: pooling to a fixed size is the simple answer to variable-length clips)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harmcache import metrics
from harmcache.errors import UsageError
from harmcache.heads.base import EpochCallback, EpochReport, Head, log_epoch
from harmcache.heads.data import SequenceData, pooled_statistics

MODEL_FILE = "model.txt"


@dataclass
class LightGBMConfig:
    """Settings of the LightGBM head."""

    n_estimators: int = 1000
    """Most boosting rounds; early stopping on validation usually ends far sooner."""
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_child_samples: int = 10
    """Small: labelled video sets are hundreds to thousands of videos, not millions of rows."""
    feature_fraction: float = 0.5
    """Columns sampled per tree; the pooled vector is ~12,000 wide with all three backbones."""
    early_stopping_rounds: int = 50
    """Stop when validation log-loss has not improved for this many rounds."""
    stats: str = "mean,std,max,min"
    """Statistics pooled over time, comma-separated."""
    seed: int = 0
    num_threads: int = 1
    """Fixed so results do not depend on the machine's core count; one, because OpenMP threads
    on a shared 2-core machine cost far more than they gain. Raise it on a dedicated machine."""

    def __post_init__(self) -> None:
        bad = set(self.stats.split(",")) - {"mean", "std", "max", "min"}
        if bad:
            raise UsageError(f"stats must be among mean,std,max,min; got {', '.join(sorted(bad))}")
        if self.n_estimators < 1 or self.num_threads < 1:
            raise UsageError("n_estimators and num_threads must be at least 1")


class LightGBMHead(Head):
    """Gradient-boosted trees on pooled per-modality statistics."""

    name = "lightgbm"
    config_class = LightGBMConfig

    def _features(self, data: SequenceData) -> np.ndarray:
        return pooled_statistics(data, tuple(self.config.stats.split(",")))[0]

    def _params(self, n_pos: int, n_neg: int) -> dict[str, Any]:
        c = self.config
        return {
            "objective": "binary",
            "metric": "binary_logloss",
            "learning_rate": c.learning_rate,
            "num_leaves": c.num_leaves,
            # A tiny training set (a pilot, the demo) must still be able to split at all.
            "min_child_samples": min(c.min_child_samples, max(2, (n_pos + n_neg) // 4)),
            "feature_fraction": c.feature_fraction,
            "scale_pos_weight": n_neg / max(n_pos, 1),
            # Same input, same trees: the documented recipe for reproducible LightGBM.
            "deterministic": True,
            "force_row_wise": True,
            "seed": c.seed,
            "num_threads": c.num_threads,
            "verbosity": -1,
        }

    def fit(
        self, train: SequenceData, val: SequenceData, *, on_epoch: EpochCallback | None = None
    ) -> LightGBMHead:
        import time

        import lightgbm as lgb

        start = time.perf_counter()
        self.dims_ = train.dims
        y, yv = train.labels, val.labels
        n_pos = int(y.sum())
        dtrain = lgb.Dataset(self._features(train), label=y, free_raw_data=True)
        dval = lgb.Dataset(self._features(val), label=yv, reference=dtrain)
        evals: dict = {}
        self.booster_ = lgb.train(
            self._params(n_pos, len(y) - n_pos),
            dtrain,
            num_boost_round=self.config.n_estimators,
            valid_sets=[dtrain, dval],
            valid_names=["train", "val"],
            callbacks=[
                lgb.early_stopping(self.config.early_stopping_rounds, verbose=False),
                lgb.record_evaluation(evals),
            ],
        )
        self.best_iteration_ = int(self.booster_.best_iteration or self.booster_.num_trees())
        scores = self.predict_proba(val)
        f1, thr = metrics.best_f1(yv, scores)
        i = self.best_iteration_ - 1
        report = EpochReport(
            1,
            1,
            float(evals["train"]["binary_logloss"][i]),
            float(evals["val"]["binary_logloss"][i]),
            metrics.threshold_rows(yv, scores),
            f1,
            thr,
            float(evals["val"]["binary_logloss"][i]),
            True,
            time.perf_counter() - start,
        )
        (on_epoch or log_epoch)(report)
        return self

    def predict_proba(self, data: SequenceData) -> np.ndarray:
        self.check_data(data, self.dims_)
        x = self._features(data)
        return self.booster_.predict(x, num_iteration=self.best_iteration_).astype(np.float64)

    def _meta(self) -> dict[str, Any]:
        return {"dims": self.dims_, "best_iteration": self.best_iteration_}

    def _save_state(self, folder: Path) -> None:
        self.booster_.save_model(str(folder / MODEL_FILE), num_iteration=self.best_iteration_)

    def _load_state(self, folder: Path, meta: dict[str, Any]) -> None:
        import lightgbm as lgb

        self.dims_ = {k: int(v) for k, v in meta["dims"].items()}
        self.best_iteration_ = int(meta["best_iteration"])
        self.booster_ = lgb.Booster(model_file=str(folder / MODEL_FILE))
