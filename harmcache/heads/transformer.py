"""A small Transformer over the cached feature sequences of every modality.

Each modality's rows (CLIP and YOLO per frame, SlowFast per window) are standardised with
training statistics, projected to `d_model`, and given a modality embedding plus a time
embedding (a sinusoid of the row's timestamp divided by the video's duration, so videos of any
length share one time axis). A CLS token is prepended; padded rows are masked. The CLS token is
never masked, so a video with no rows in some (or every) modality still yields a finite logit.
The model outputs one logit per category from the CLS token (one trunk for every category);
the sigmoid lives in the loss and in `predict_categories`.

Long videos: before projection each modality is mean-pooled, video by video, to at most
`max_rows` tokens (default 256: consecutive rows averaged, masked rows left out), so the
attention's cost is bounded by the cap and not by the video's length; windowed attention is
not used.

Everything per modality (statistics, projection, embedding) is stored under the modality's
name and the tokens are laid out in sorted name order, so a saved head scores the same however
the modalities of its input are ordered.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harmcache.errors import DataError, UsageError
from harmcache.heads.base import (
    EpochCallback,
    _as_pair,
    check_labelled,
    check_same_categories,
    log_epoch,
)
from harmcache.heads.data import Modality, Moments, SequenceData, modality_moments
from harmcache.heads.losses import MaskedFocal
from harmcache.heads.neural import MONITORS, ModalityInput, NeuralHead
from harmcache.heads.targets import check_targets

log = logging.getLogger(__name__)

STATISTICS_FILE = "statistics.json"
"""Per-modality normalisation statistics of the training rows (also in the weights)."""


def find_nhead(d_model: int, max_heads: int = 10) -> int:
    """The largest number of attention heads ≤ `max_heads` that divides `d_model` (a fixed nhead
    breaks as soon as the width changes; see
    docs/design-notes.md#attention-heads-from-the-model-width)."""
    if d_model < 1 or max_heads < 1:
        raise ValueError("d_model and max_heads must be positive")
    return next(h for h in range(min(max_heads, d_model), 0, -1) if d_model % h == 0)


class SequenceClassifier(nn.Module):
    """CLS + per-modality tokens → TransformerEncoder → one logit per video and category."""

    def __init__(
        self,
        dims: dict[str, int],
        *,
        d_model: int = 128,
        layers: int = 2,
        max_heads: int = 10,
        dim_feedforward: int = 512,
        dropout: float = 0.4,
        attention_dropout: float = 0.0,
        n_outputs: int = 1,
    ):
        super().__init__()
        # Tokens in sorted name order, whatever order the data arrives in.
        self.names = sorted(dims)
        self.nhead = find_nhead(d_model, max_heads)
        self.inputs = nn.ModuleDict(
            {name: ModalityInput(dims[name], d_model) for name in self.names}
        )
        self.cls = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
        freqs = torch.exp(torch.linspace(0.0, math.log(64.0), d_model // 2)) * math.pi
        self.register_buffer("freqs", freqs, persistent=False)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            d_model,
            self.nhead,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
        )
        layer.self_attn.dropout = attention_dropout
        # No nested-tensor fast path: it changes numerics between train and eval batches.
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, n_outputs)

    def time_embedding(self, position: torch.Tensor) -> torch.Tensor:
        angles = position[..., None] * self.freqs
        emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
        if emb.shape[-1] < self.cls.shape[-1]:  # odd d_model
            emb = nn.functional.pad(emb, (0, 1))
        return emb

    def forward(
        self,
        values: dict[str, torch.Tensor],
        masks: dict[str, torch.Tensor],
        positions: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        """Logits (B, K) from each modality's (B, L, D) rows, (B, L) masks and (B, L)
        positions."""
        batch = next(iter(values.values())).shape[0] if values else 1
        tokens = [self.cls.expand(batch, -1, -1)]
        padding = [torch.zeros(batch, 1, dtype=torch.bool)]
        for name in self.names:
            tokens.append(self.inputs[name](values[name]) + self.time_embedding(positions[name]))
            padding.append(~masks[name])
        h = self.drop(torch.cat(tokens, dim=1))
        h = self.encoder(h, src_key_padding_mask=torch.cat(padding, dim=1))
        return self.out(self.norm(h[:, 0]))


class _Tensors:
    """A SequenceData as torch tensors, with each video's used length, for fast batching."""

    def __init__(self, data: SequenceData, max_rows: int | None):
        self.mods = {}
        for name, m in data.modalities.items():
            m = _pool_rows(m, max_rows)
            used = m.mask * np.arange(1, m.mask.shape[1] + 1)
            self.mods[name] = (
                torch.from_numpy(np.ascontiguousarray(m.values, dtype=np.float32)),
                torch.from_numpy(m.mask),
                torch.from_numpy(m.position.astype(np.float32)),
                used.max(axis=1, initial=0),
            )
        self.n = len(data)

    def batch(self, idx: np.ndarray) -> tuple[dict, dict, dict]:
        ti = torch.from_numpy(idx)
        values, masks, positions = {}, {}, {}
        for name, (v, m, p, used) in self.mods.items():
            length = int(used[idx].max(initial=0))
            values[name] = v[ti, :length]
            masks[name] = m[ti, :length]
            positions[name] = p[ti, :length]
        return values, masks, positions


def _pool_rows(m: Modality, max_rows: int | None) -> Modality:
    """Mean-pool consecutive rows so no video keeps more than `max_rows` of this modality.

    Each video is pooled on its own: a video with n rows (up to its last unmasked one) averages
    groups of ⌈n / max_rows⌉ consecutive rows, masked rows left out of the means, so its tokens
    do not depend on the other videos scored with it. Attention then costs O(max_rows²) per
    modality however long the video; a video within the limit is passed through unchanged."""
    if max_rows is None:
        return m
    n, length, dim = m.values.shape
    used = (m.mask * np.arange(1, length + 1)).max(axis=1, initial=0)
    if not (used > max_rows).any():
        return m
    group = np.maximum(-(-used // max_rows), 1)  # ⌈used / max_rows⌉ rows per token
    video, row = np.nonzero(m.mask)
    # Rows in video-major, time-minor order, so each token's rows are one run of equal cells.
    cell = video * max_rows + row // group[video]
    first = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
    size = np.diff(np.r_[first, len(cell)])[:, None]
    out_len = int((-(-used // group)).max())
    at = (cell[first] // max_rows, cell[first] % max_rows)

    def pooled(x: np.ndarray, dtype) -> np.ndarray:
        sums = np.add.reduceat(x[video, row].astype(np.float64), first, axis=0)
        out = np.zeros((n, out_len, *x.shape[2:]), dtype=dtype)
        out[at] = (sums / size.reshape(-1, *[1] * (x.ndim - 2))).astype(dtype)
        return out

    mask = np.zeros((n, out_len), dtype=bool)
    mask[at] = True
    return Modality(
        pooled(m.values, np.float32),
        mask,
        pooled(m.timestamp, m.timestamp.dtype),
        pooled(m.position, np.float32),
    )


class TransformerHead(NeuralHead):
    """Transformer over masked variable-length sequences of every modality, scoring one
    category or K at once (one logit per category; see `harmcache.heads.neural`).

    Defaults follow earlier experiments where they say something (see
    docs/design-notes.md#transformer-defaults); the width is kept small so an epoch over 4,000
    cached videos stays CPU-cheap.

    Parameters
    ----------
    d_model : token width. 128 keeps a CPU epoch over 4,000 videos × 69 tokens to seconds.
    layers : encoder layers.
    max_heads : attention heads = the largest divisor of d_model not above this (see `find_nhead`).
    dim_feedforward : feed-forward width.
    dropout : on the input tokens, the residual branches and the feed-forward.
    attention_dropout : on the attention weights. Off by default: drawing a B×heads×T×T random
        mask was a third of a CPU training step, for little regularisation beyond `dropout`.
    lr, weight_decay : AdamW.
    batch_size : videos per optimisation step; larger makes CPU epochs much faster.
    epochs : most epochs; all of them when `fit` gets no `eval_set`.
    patience : with an `eval_set`, stop after this many epochs without a better validation
        value; the best epoch's weights are restored (see
        docs/design-notes.md#early-stopping-and-the-best-epoch).
    monitor : early-stopping value on validation: f1 (best F1 over the 0.01 grid), ap, or loss;
        with K categories, the mean over them (see `harmcache.heads.neural`).
    loss : bce, BCEWithLogitsLoss(pos_weight = n_neg / n_pos) (see
        docs/design-notes.md#class-imbalance-and-pos-weight), or focal; either per category,
        over the labelled cells only.
    focal_gamma : focal loss focusing exponent (see docs/design-notes.md#focal-loss).
    focal_alpha : focal loss weight of the positive class; None balances it as n_neg / n in
        each category (over its labelled videos).
    max_rows : the most tokens per modality and video (the sequence cap, `max_len`): a longer
        video mean-pools consecutive rows, each video on its own, masked rows left out, before
        projection, so attention stays O(max_rows²) for videos of thousands of rows (an hour at
        2 fps). 256 leaves the default 32 frames / 8 windows untouched; None keeps every row.
        Halving 32 frames to 16 roughly halves the epoch time.
    grad_clip : gradient norm clip; 0 turns it off.
    seed : seeds initialisation, shuffling and dropout: CPU runs are repeatable.
    threads : torch intra-op threads while fitting and scoring (None: torch's default). One,
        because a batch-4 step is too small to split, and on a 2-core machine shared with
        anything else two OpenMP threads made each step 10-20 times slower (measured; see
        bench/train_bench.py).
    """

    name = "transformer"

    def __init__(
        self,
        *,
        # architecture
        d_model: int = 128,
        layers: int = 2,
        max_heads: int = 10,
        dim_feedforward: int = 512,
        dropout: float = 0.4,
        attention_dropout: float = 0.0,
        # optimisation
        lr: float = 3e-4,
        weight_decay: float = 3e-3,
        batch_size: int = 4,
        epochs: int = 10,
        patience: int = 4,
        monitor: str = "f1",
        loss: str = "bce",
        focal_gamma: float = 2.0,
        focal_alpha: float | None = None,
        grad_clip: float = 1.0,
        # input and machine
        max_rows: int | None = 256,
        seed: int = 0,
        threads: int | None = 1,
    ):
        self.d_model = d_model
        self.layers = layers
        self.max_heads = max_heads
        self.dim_feedforward = dim_feedforward
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.monitor = monitor
        self.loss = loss
        self.focal_gamma = focal_gamma
        self.focal_alpha = focal_alpha
        self.grad_clip = grad_clip
        self.max_rows = max_rows
        self.seed = seed
        self.threads = threads

    def _check_params(self) -> None:
        if min(self.d_model, self.layers, self.batch_size, self.epochs) < 1:
            raise UsageError("d_model, layers, batch_size and epochs must be at least 1")
        if self.monitor not in MONITORS:
            raise UsageError(f"monitor must be f1, ap or loss, got {self.monitor!r}")
        if self.loss not in ("bce", "focal"):
            raise UsageError(f"loss must be bce or focal, got {self.loss!r}")
        for name in ("dropout", "attention_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise UsageError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.max_rows is not None and self.max_rows < 1:
            raise UsageError(f"max_rows must be at least 1, got {self.max_rows}")

    def _new_model(self) -> SequenceClassifier:
        return SequenceClassifier(
            self.dims_,
            d_model=self.d_model,
            layers=self.layers,
            max_heads=self.max_heads,
            dim_feedforward=self.dim_feedforward,
            dropout=self.dropout,
            attention_dropout=self.attention_dropout,
            n_outputs=self.n_outputs_,
        )

    # --- data shaping ------------------------------------------------------------------------
    def _tensors(self, X: SequenceData) -> _Tensors:
        return _Tensors(X, self.max_rows)

    def _training_set(self, X: SequenceData) -> tuple[_Tensors, dict[str, Moments]]:
        moments = {name: modality_moments(m) for name, m in X.modalities.items()}
        return self._tensors(X), moments

    def _forward(self, batch: tuple[dict, dict, dict]) -> torch.Tensor:
        return self.model_(*batch)

    def fit_stream(
        self,
        stream,
        *,
        eval_set: SequenceData | tuple[SequenceData, np.ndarray] | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> TransformerHead:
        """Learn from a `harmcache.train.loader.StreamingLoader` (cached videos read shard by
        shard into a seeded shuffle buffer, never all in memory) instead of a `SequenceData`.
        The normalisation statistics come from the stream's one pass over the cache; the
        batch order is the stream's, seeded by its seed and the epoch. The stream's labels are
        (n,) or (n, K), as `fit` takes them. Returns self."""
        self._check_params()
        y = check_targets(stream.labels, "the stream")
        val = None
        if eval_set is not None:
            val = check_labelled(*_as_pair(eval_set), "eval_set", training=False)
            check_same_categories(y, val[1])
        self._forget_learned()
        self.dims_ = dict(stream.dims)
        self.n_outputs_ = y.shape[1]
        moments = stream.moments()
        unusable = sorted(n for n, m in moments.items() if not np.isfinite([m.mean, m.m2]).all())
        if unusable:
            raise DataError(
                f"the training videos hold non-finite feature values (NaN or inf) in "
                f"{', '.join(unusable)}; features must be finite numbers"
            )
        batches = _StreamBatches(stream, self.max_rows)
        self._train(batches, moments, y, val, on_epoch or log_epoch)
        self.classes_ = np.array([0, 1])
        return self

    # --- internals ---------------------------------------------------------------------------
    def _set_statistics(self, moments: dict[str, Moments]) -> None:
        self.statistics_ = {name: m.to_json() for name, m in sorted(moments.items())}
        super()._set_statistics(moments)

    def _loss_fn(self, n_pos: np.ndarray, n_neg: np.ndarray):
        if self.loss == "focal":
            if self.focal_alpha is None:
                return MaskedFocal(self.focal_gamma, n_neg / (n_pos + n_neg))
            return MaskedFocal(self.focal_gamma, np.full(len(n_pos), self.focal_alpha))
        return super()._loss_fn(n_pos, n_neg)

    def _state(self) -> dict[str, Any]:
        return {"nhead": self.model_.nhead, **super()._state()}

    def _save_state(self, folder: Path) -> None:
        super()._save_state(folder)
        if getattr(self, "statistics_", None):
            (folder / STATISTICS_FILE).write_text(json.dumps(self.statistics_) + "\n")

    def _check_weights(self, folder: Path, weights: dict[str, torch.Tensor]) -> None:
        if "mean0" in weights:
            raise UsageError(
                f"{folder} holds a transformer saved before its per-modality weights were keyed "
                "by modality name; train it again"
            )


class _StreamBatches:
    """A `StreamingLoader`'s epochs as batches: each part it yields is one batch, in its order."""

    def __init__(self, stream, max_rows: int | None):
        self.stream = stream
        self.max_rows = max_rows

    def epoch(self, epoch: int) -> Iterator[tuple[tuple[dict, dict, dict], torch.Tensor]]:
        for part in self.stream.epoch(epoch):
            tensors = _Tensors(part, self.max_rows)
            target = torch.from_numpy(part.labels.reshape(len(part), -1).astype(np.float32))
            yield tensors.batch(np.arange(tensors.n)), target
