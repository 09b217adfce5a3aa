"""The sanity baseline: mean-pooled features, standardised, logistic regression with balanced
class weights. If this cannot beat chance, the labels or the features are wrong (see
docs/design-notes.md#sanity-baseline).

With K categories the columns are standardised once, on every training video, and each
category gets its own coefficient row, fitted on its labelled videos; one category is one row,
the same code."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from harmcache.errors import UsageError
from harmcache.heads.base import EpochCallback, EpochReport, Head, Validation
from harmcache.heads.data import PooledData, SequenceData, pooled_statistics
from harmcache.heads.targets import labelled, masked_log_loss

STATE_FILE = "logreg.json"


class LogRegHead(Head):
    """StandardScaler + LogisticRegression(class_weight="balanced") on mean-pooled rows, one
    per category: `coef_` is (K, columns), `intercept_` (K,).

    Parameters
    ----------
    C : inverse L2 strength.
    max_iter : most solver iterations.
    seed : the solver's random state.
    """

    name = "logreg"
    pooled_stats = ("mean",)

    def __init__(self, *, C: float = 1.0, max_iter: int = 2000, seed: int = 0):
        self.C = C
        self.max_iter = max_iter
        self.seed = seed

    def _check_params(self) -> None:
        if self.C <= 0:
            raise UsageError(f"C must be positive, got {self.C}")

    def _fit(
        self, X: SequenceData, y: np.ndarray, val: Validation | None, on_epoch: EpochCallback
    ) -> None:
        from sklearn.linear_model import LogisticRegression

        start = time.perf_counter()
        # In place on one float64 copy of the pooled rows: with a million videos each extra
        # copy is gigabytes.
        x = self._pooled(X)
        missing = np.isnan(x)
        x[missing] = 0.0
        # Column means over the videos that have rows there (0 for a column nobody has).
        self.mean_ = x.sum(axis=0) / np.maximum(len(x) - missing.sum(axis=0), 1)
        np.copyto(x, self.mean_, where=missing)
        del missing
        std = x.std(axis=0)
        self.scale_ = np.where(std < 1e-12, 1.0, std)
        x -= self.mean_
        x /= self.scale_
        coef, intercept = [], []
        for k in range(y.shape[1]):
            rows, labels = labelled(y, k)
            model = LogisticRegression(
                C=self.C, class_weight="balanced", max_iter=self.max_iter, random_state=self.seed
            ).fit(x if len(rows) == len(x) else x[rows], labels)
            coef.append(model.coef_[0].astype(np.float64))
            intercept.append(float(model.intercept_[0]))
        del x
        self.coef_ = np.stack(coef)
        self.intercept_ = np.array(intercept)
        # One report for the whole fit; the losses are means over the categories.
        train_loss = masked_log_loss(y, self._category_proba(X))
        if val is None:
            on_epoch(EpochReport.single_fit(train_loss, time.perf_counter() - start))
            return
        scores = self._category_proba(val[0])
        val_loss = masked_log_loss(val[1], scores)
        seconds = time.perf_counter() - start
        on_epoch(EpochReport.single_fit(train_loss, seconds, val, scores, val_loss))

    def _pooled(self, X: SequenceData | PooledData) -> np.ndarray:
        if isinstance(X, PooledData):
            return X.columns(self.pooled_stats, "X").astype(np.float64)
        return pooled_statistics(X, self.pooled_stats, order=sorted(self.dims_))[0].astype(
            np.float64
        )

    def _category_proba(self, X: SequenceData) -> np.ndarray:
        x = self._pooled(X)
        # A modality with no rows in a video (or in a predict segment): use the training mean.
        np.copyto(x, self.mean_, where=np.isnan(x))
        x -= self.mean_
        x /= self.scale_
        # One product per category row: the same arithmetic whatever the number of categories.
        z = [x @ coef + intercept for coef, intercept in zip(self.coef_, self.intercept_)]
        return 1.0 / (1.0 + np.exp(-np.column_stack(z).reshape(len(x), len(self.coef_))))

    def _save_state(self, folder: Path) -> None:
        # JSON, not pickle: readable, and independent of the scikit-learn version.
        state = {
            "mean": self.mean_.tolist(),
            "scale": self.scale_.tolist(),
            "coef": self.coef_.tolist(),
            "intercept": self.intercept_.tolist(),
        }
        (folder / STATE_FILE).write_text(json.dumps(state))

    def _load_state(self, folder: Path, state: dict[str, Any]) -> None:
        saved = json.loads((folder / STATE_FILE).read_text())
        self.mean_ = np.asarray(saved["mean"], dtype=np.float64)
        self.scale_ = np.asarray(saved["scale"], dtype=np.float64)
        # One row and one number in heads saved before categories.
        self.coef_ = np.atleast_2d(np.asarray(saved["coef"], dtype=np.float64))
        self.intercept_ = np.atleast_1d(np.asarray(saved["intercept"], dtype=np.float64))
