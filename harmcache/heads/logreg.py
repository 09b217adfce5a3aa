"""The sanity baseline: mean-pooled features, standardised, logistic regression with balanced
class weights. If this cannot beat chance, the labels or the features are wrong (report 002)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harmcache import metrics
from harmcache.errors import UsageError
from harmcache.heads.base import EpochCallback, EpochReport, Head, log_epoch
from harmcache.heads.data import SequenceData, pooled_statistics

STATE_FILE = "logreg.json"


@dataclass
class LogRegConfig:
    """Settings of the logistic-regression head."""

    C: float = 1.0
    """Inverse L2 strength."""
    max_iter: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.C <= 0:
            raise UsageError(f"C must be positive, got {self.C}")


class LogRegHead(Head):
    """StandardScaler + LogisticRegression(class_weight="balanced") on mean-pooled rows."""

    name = "logreg"
    config_class = LogRegConfig

    def _features(self, data: SequenceData) -> np.ndarray:
        x = _mean_pooled(data)
        # A modality with no rows in a video (or in a predict segment): use the training mean.
        return np.where(np.isnan(x), self.mean_, x)

    def fit(
        self, train: SequenceData, val: SequenceData, *, on_epoch: EpochCallback | None = None
    ) -> LogRegHead:
        from sklearn.linear_model import LogisticRegression

        start = time.perf_counter()
        self.dims_ = train.dims
        x = _mean_pooled(train)
        seen = ~np.isnan(x)
        # Column means over the videos that have rows there (0 for a column nobody has).
        self.mean_ = np.where(seen, x, 0).sum(axis=0) / np.maximum(seen.sum(axis=0), 1)
        x = np.where(seen, x, self.mean_)
        std = x.std(axis=0)
        self.scale_ = np.where(std < 1e-12, 1.0, std)
        model = LogisticRegression(
            C=self.config.C,
            class_weight="balanced",
            max_iter=self.config.max_iter,
            random_state=self.config.seed,
        ).fit((x - self.mean_) / self.scale_, train.labels)
        self.coef_ = model.coef_[0].astype(np.float64)
        self.intercept_ = float(model.intercept_[0])
        scores = self.predict_proba(val)
        f1, thr = metrics.best_f1(val.labels, scores)
        train_loss = _log_loss(train.labels, self.predict_proba(train))
        val_loss = _log_loss(val.labels, scores)
        (on_epoch or log_epoch)(
            EpochReport(
                1,
                1,
                train_loss,
                val_loss,
                metrics.threshold_rows(val.labels, scores),
                f1,
                thr,
                val_loss,
                True,
                time.perf_counter() - start,
            )
        )
        return self

    def predict_proba(self, data: SequenceData) -> np.ndarray:
        self.check_data(data, self.dims_)
        z = (self._features(data) - self.mean_) / self.scale_ @ self.coef_ + self.intercept_
        return 1.0 / (1.0 + np.exp(-z))

    def _meta(self) -> dict[str, Any]:
        return {"dims": self.dims_}

    def _save_state(self, folder: Path) -> None:
        # JSON, not pickle: readable, and independent of the scikit-learn version.
        state = {
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "coef": self.coef_.tolist(),
            "intercept": self.intercept_,
        }
        (folder / STATE_FILE).write_text(json.dumps(state))

    def _load_state(self, folder: Path, meta: dict[str, Any]) -> None:
        state = json.loads((folder / STATE_FILE).read_text())
        self.dims_ = {k: int(v) for k, v in meta["dims"].items()}
        self.mean_ = np.asarray(state["mean"], dtype=np.float64)
        self.scale_ = np.asarray(state["scale"], dtype=np.float64)
        self.coef_ = np.asarray(state["coef"], dtype=np.float64)
        self.intercept_ = float(state["intercept"])


def _mean_pooled(data: SequenceData) -> np.ndarray:
    return pooled_statistics(data, ("mean",))[0].astype(np.float64)


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
