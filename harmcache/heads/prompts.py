"""Prompt categories: each category scored by CLIP text prompts against the cached CLIP frame
embeddings, with nothing learned but where its scores sit.

A frame's score in a category is the cosine between its CLIP embedding and the category's
prompt embedding (the mean of its prompts' unit embeddings, made unit again). A video's score
is the mean of its top `top_k` share of frame scores, as the MIL head pools its snippets, so a
short scene decides a long video. `fit` only centres and scales each category's pooled cosines
on the training videos (a monotone map: the ranking, and so AUROC and AP, is the prompts'
own); the run's calibrator and threshold then make them probabilities and decisions like any
other head's.

The text embeddings come in as a setting (`text`: category → prompt vectors), made by
`harmcache.extractors.clip_text` from the text tower of the weights that made the cached CLIP
family (`text_weights` names them), and are saved with the head: the run never needs the text
model again.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from harmcache.errors import DataError, UsageError
from harmcache.heads.base import EpochCallback, EpochReport, Head, Validation
from harmcache.heads.data import SequenceData
from harmcache.heads.targets import masked_log_loss
from harmcache.heads.timeline import Timeline

STATE_FILE = "prompts.json"
MODALITY = "clip"


class PromptHead(Head):
    """Per category: top-k pooled cosine between frames and the category's prompts.

    Parameters
    ----------
    prompts : category → its prompts, as written (kept for the record).
    text : category → the prompts' CLIP text embeddings (lists of 512 numbers), in the order
        of the labels' categories.
    text_weights : the identity of the CLIP weights the text came from (the family's spec).
    top_k : share of a video's frames whose scores are averaged into the video's score.
    seed : unused (nothing here is random); kept so every head takes one.
    """

    name = "prompts"

    def __init__(
        self,
        *,
        prompts: dict | None = None,
        text: dict | None = None,
        text_weights: dict | None = None,
        top_k: float = 0.25,
        seed: int = 0,
    ):
        self.prompts = prompts
        self.text = text
        self.text_weights = text_weights
        self.top_k = top_k
        self.seed = seed

    def _check_params(self) -> None:
        if not isinstance(self.text, dict) or not self.text:
            raise UsageError(
                "the prompts head needs text embeddings: train it with --prompts prompts.yaml"
            )
        if not 0 < self.top_k <= 1:
            raise UsageError(f"top_k must be in (0, 1], got {self.top_k}")

    @property
    def categories(self) -> list[str]:
        return list(self.text or {})

    def _directions(self) -> np.ndarray:
        """(K, 512): each category's unit prompt direction."""
        rows = []
        for vectors in (self.text or {}).values():
            v = np.asarray(vectors, dtype=np.float64).reshape(-1, np.shape(vectors)[-1])
            mean = v.mean(axis=0)
            rows.append(mean / max(np.linalg.norm(mean), 1e-12))
        return np.stack(rows)

    def _frame_scores(self, X: SequenceData) -> tuple[np.ndarray, np.ndarray]:
        """(N, L, K) cosines of each frame with each category, and the (N, L) frame mask."""
        if MODALITY not in X.modalities:
            raise DataError(
                f"the prompts head scores CLIP frames; these features are {', '.join(X.dims)}"
            )
        m = X.modalities[MODALITY]
        frames = m.values.astype(np.float64)
        frames /= np.maximum(np.linalg.norm(frames, axis=-1, keepdims=True), 1e-12)
        directions = self._directions()
        if directions.shape[1] != frames.shape[-1]:
            raise DataError(
                f"the prompts' text embeddings have {directions.shape[1]} dims, the CLIP frames "
                f"{frames.shape[-1]}: they come from different models"
            )
        return frames @ directions.T, m.mask

    def _pooled(self, X: SequenceData) -> np.ndarray:
        """(N, K) top-k mean of each video's frame cosines (NaN for a video with no frame)."""
        scores, mask = self._frame_scores(X)
        n, length, k = scores.shape
        out = np.full((n, k), np.nan)
        ordered = np.sort(np.where(mask[..., None], scores, -np.inf), axis=1)[:, ::-1]
        counts = mask.sum(axis=1)
        for i in range(n):
            if counts[i]:
                top = max(1, math.ceil(self.top_k * counts[i]))
                out[i] = ordered[i, :top].mean(axis=0)
        return out

    def _fit(
        self, X: SequenceData, y: np.ndarray, val: Validation | None, on_epoch: EpochCallback
    ) -> None:
        start = time.perf_counter()
        if y.shape[1] != len(self.text):
            raise DataError(
                f"the prompts name {len(self.text)} categories ({', '.join(self.text)}) but the "
                f"labels hold {y.shape[1]}"
            )
        pooled = self._pooled(X)
        self.center_ = np.nanmean(pooled, axis=0)
        spread = np.nanstd(pooled, axis=0)
        self.spread_ = np.where(spread < 1e-9, 1.0, spread)
        train_loss = masked_log_loss(y, self._category_proba(X))
        if val is None:
            on_epoch(EpochReport.single_fit(train_loss, time.perf_counter() - start))
            return
        scores = self._category_proba(val[0])
        seconds = time.perf_counter() - start
        on_epoch(
            EpochReport.single_fit(
                train_loss, seconds, val, scores, masked_log_loss(val[1], scores)
            )
        )

    def _category_proba(self, X: SequenceData) -> np.ndarray:
        z = (self._pooled(X) - self.center_) / self.spread_
        return 1.0 / (1.0 + np.exp(-np.nan_to_num(z, nan=0.0)))

    def timelines(self, X: SequenceData, category: int | None = None) -> list[Timeline]:
        """Per video, each CLIP frame's score in `category` (needed when there are several),
        from its timestamp to the next frame's (the last to the video's end)."""
        X = self._check_input(X)
        if category is None and len(self.text) > 1:
            raise UsageError(
                f"this prompts head scores {len(self.text)} categories: pass category=k"
            )
        k = category or 0
        scores, mask = self._frame_scores(X)
        stamps = X.modalities[MODALITY].timestamp
        out = []
        for i in range(len(X)):
            t = stamps[i, mask[i]]
            z = (scores[i, mask[i], k] - self.center_[k]) / self.spread_[k]
            end = np.append(t[1:], max(float(X.duration[i]), float(t[-1]) if len(t) else 0.0))
            out.append(Timeline(t, np.maximum(end, t), 1.0 / (1.0 + np.exp(-z))))
        return out

    def _state(self) -> dict[str, Any]:
        return {"categories": self.categories}

    def _save_state(self, folder: Path) -> None:
        state = {"center": self.center_.tolist(), "spread": self.spread_.tolist()}
        (folder / STATE_FILE).write_text(json.dumps(state))

    def _load_state(self, folder: Path, state: dict[str, Any]) -> None:
        saved = json.loads((folder / STATE_FILE).read_text())
        self.center_ = np.asarray(saved["center"], dtype=np.float64)
        self.spread_ = np.asarray(saved["spread"], dtype=np.float64)
