"""A small Transformer over the cached feature sequences of every modality.

Each modality's rows (CLIP and YOLO per frame, SlowFast per window) are standardised with
training statistics, projected to `d_model`, and given a modality embedding plus a time
embedding (a sinusoid of the row's timestamp divided by the video's duration, so videos of any
length share one time axis). A CLS token is prepended; padded rows are masked. The CLS token is
never masked, so a video with no rows in some (or every) modality still yields a finite logit.
The model outputs logits; the sigmoid lives in the loss and in `predict_proba`.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from harmcache import metrics
from harmcache.errors import UsageError
from harmcache.heads.base import EpochCallback, EpochReport, Head, log_epoch
from harmcache.heads.data import Modality, SequenceData

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.pt"


def find_nhead(d_model: int, max_heads: int = 10) -> int:
    """The largest number of attention heads ≤ `max_heads` that divides `d_model` (report 000
    §2.3: a fixed nhead breaks as soon as the width changes)."""
    if d_model < 1 or max_heads < 1:
        raise ValueError("d_model and max_heads must be positive")
    return next(h for h in range(min(max_heads, d_model), 0, -1) if d_model % h == 0)


@dataclass
class TransformerConfig:
    """Settings of the Transformer head. Defaults follow the reports (000 §6.2) where they say
    something; the width is kept small so an epoch over 4,000 cached videos stays CPU-cheap."""

    d_model: int = 128
    """Token width. 128 keeps a CPU epoch over 4,000 videos × 69 tokens to seconds."""
    layers: int = 2
    """Encoder layers."""
    max_heads: int = 10
    """Attention heads = the largest divisor of d_model not above this (000 §2.3)."""
    dim_feedforward: int = 512
    """Feed-forward width (000 §6.2)."""
    dropout: float = 0.4
    """Dropout on the input tokens, the residual branches and the feed-forward (000 §6.2)."""
    attention_dropout: float = 0.0
    """Dropout on the attention weights. Off by default: drawing a B×heads×T×T random mask was
    a third of a CPU training step, for little regularisation beyond `dropout`."""
    lr: float = 3e-4
    """AdamW learning rate (000 §6.2)."""
    weight_decay: float = 3e-3
    """AdamW weight decay (000 §6.2)."""
    batch_size: int = 4
    """Videos per optimisation step (000 §6.2). Larger batches make CPU epochs much faster."""
    epochs: int = 10
    """Maximum epochs (000 §6.2)."""
    patience: int = 4
    """Stop after this many epochs without a better validation value; the best epoch's
    weights are restored (000 §2.4)."""
    monitor: str = "f1"
    """Early-stopping value on validation: f1 (best F1 over the 0.01 grid), ap, or loss."""
    loss: str = "bce"
    """bce: BCEWithLogitsLoss(pos_weight = n_neg / n_pos) (001 §5.2); focal: focal loss."""
    focal_gamma: float = 2.0
    """Focal loss focusing exponent (002 §6)."""
    focal_alpha: float | None = None
    """Focal loss weight of the positive class; None balances it as n_neg / n."""
    max_rows: int | None = None
    """Average consecutive rows so no modality has more than this many tokens (None: keep all).
    Halving 32 frames to 16 roughly halves the epoch time."""
    grad_clip: float = 1.0
    """Gradient norm clip; 0 turns it off."""
    seed: int = 0
    """Seeds initialisation, shuffling and dropout: CPU runs are repeatable."""
    threads: int | None = 1
    """torch intra-op threads while fitting and scoring (None: torch's default). One, because
    a batch-4 step is too small to split, and on a 2-core machine shared with anything else two
    OpenMP threads made each step 10-20 times slower (measured; see bench/train_bench.py)."""

    def __post_init__(self) -> None:
        if self.d_model < 1 or self.layers < 1 or self.batch_size < 1 or self.epochs < 1:
            raise UsageError("d_model, layers, batch_size and epochs must be at least 1")
        if self.monitor not in ("f1", "ap", "loss"):
            raise UsageError(f"monitor must be f1, ap or loss, got {self.monitor!r}")
        if self.loss not in ("bce", "focal"):
            raise UsageError(f"loss must be bce or focal, got {self.loss!r}")
        for name in ("dropout", "attention_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise UsageError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.max_rows is not None and self.max_rows < 1:
            raise UsageError(f"max_rows must be at least 1, got {self.max_rows}")


class SequenceClassifier(nn.Module):
    """CLS + per-modality tokens → TransformerEncoder → one logit per video."""

    def __init__(self, dims: dict[str, int], cfg: TransformerConfig):
        super().__init__()
        self.names = list(dims)
        d = cfg.d_model
        self.nhead = find_nhead(d, cfg.max_heads)
        for i, dim in enumerate(dims.values()):
            # Training-set statistics, stored with the weights.
            self.register_buffer(f"mean{i}", torch.zeros(dim))
            self.register_buffer(f"scale{i}", torch.ones(dim))
        self.project = nn.ModuleList(nn.Linear(dim, d) for dim in dims.values())
        self.modality = nn.Embedding(len(dims), d)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        freqs = torch.exp(torch.linspace(0.0, math.log(64.0), d // 2)) * math.pi
        self.register_buffer("freqs", freqs, persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            d,
            self.nhead,
            dim_feedforward=cfg.dim_feedforward,
            dropout=cfg.dropout,
            batch_first=True,
            norm_first=True,
        )
        layer.self_attn.dropout = cfg.attention_dropout
        # No nested-tensor fast path: it changes numerics between train and eval batches.
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, 1)

    def time_embedding(self, position: torch.Tensor) -> torch.Tensor:
        angles = position[..., None] * self.freqs
        emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
        if emb.shape[-1] < self.cls.shape[-1]:  # odd d_model
            emb = nn.functional.pad(emb, (0, 1))
        return emb

    def forward(
        self, values: list[torch.Tensor], masks: list[torch.Tensor], positions: list[torch.Tensor]
    ) -> torch.Tensor:
        batch = values[0].shape[0] if values else 1
        tokens = [self.cls.expand(batch, -1, -1)]
        padding = [torch.zeros(batch, 1, dtype=torch.bool)]
        for i, (x, mask, pos) in enumerate(zip(values, masks, positions)):
            x = (x - getattr(self, f"mean{i}")) / getattr(self, f"scale{i}")
            h = self.project[i](x) + self.modality.weight[i] + self.time_embedding(pos)
            tokens.append(h)
            padding.append(~mask)
        h = self.drop(torch.cat(tokens, dim=1))
        h = self.encoder(h, src_key_padding_mask=torch.cat(padding, dim=1))
        return self.out(self.norm(h[:, 0])).squeeze(-1)


class _Tensors:
    """A SequenceData as torch tensors, with each video's used length, for fast batching."""

    def __init__(self, data: SequenceData, names: list[str], max_rows: int | None):
        self.mods = []
        for name in names:
            m = _pool_rows(data.modalities[name], max_rows)
            used = m.mask * np.arange(1, m.mask.shape[1] + 1)
            self.mods.append(
                (
                    torch.from_numpy(np.ascontiguousarray(m.values, dtype=np.float32)),
                    torch.from_numpy(m.mask),
                    torch.from_numpy(m.position.astype(np.float32)),
                    used.max(axis=1, initial=0),
                )
            )
        self.n = len(data)

    def batch(self, idx: np.ndarray) -> tuple[list, list, list]:
        ti = torch.from_numpy(idx)
        values, masks, positions = [], [], []
        for v, m, p, used in self.mods:
            length = int(used[idx].max(initial=0))
            values.append(v[ti, :length])
            masks.append(m[ti, :length])
            positions.append(p[ti, :length])
        return values, masks, positions


def _pool_rows(m: Modality, max_rows: int | None) -> Modality:
    """Average groups of consecutive rows so at most `max_rows` remain (masked rows excluded)."""
    if max_rows is None or m.values.shape[1] <= max_rows:
        return m
    k = math.ceil(m.values.shape[1] / max_rows)
    n, length, dim = m.values.shape
    pad = (-length) % k
    v = np.pad(m.values, ((0, 0), (0, pad), (0, 0))).reshape(n, -1, k, dim)
    w = np.pad(m.mask, ((0, 0), (0, pad))).reshape(n, -1, k).astype(np.float32)
    t = np.pad(m.timestamp, ((0, 0), (0, pad))).reshape(n, -1, k)
    p = np.pad(m.position, ((0, 0), (0, pad))).reshape(n, -1, k)
    count = w.sum(axis=2)
    safe = np.maximum(count, 1)
    return Modality(
        ((v * w[..., None]).sum(axis=2) / safe[..., None]).astype(np.float32),
        count > 0,
        (t * w).sum(axis=2) / safe,
        ((p * w).sum(axis=2) / safe).astype(np.float32),
    )


class _EarlyStopping:
    """Remembers the best epoch's weights; counts epochs since the last improvement."""

    def __init__(self, lower_is_better: bool):
        self.lower_is_better = lower_is_better
        self.best: float | None = None
        self.epoch = 0
        self.state: dict | None = None
        self.stale = 0

    def update(self, value: float, epoch: int, model: nn.Module) -> bool:
        better = self.best is None or (
            value < self.best if self.lower_is_better else value > self.best
        )
        if better:
            self.best, self.epoch, self.stale = value, epoch, 0
            self.state = copy.deepcopy(model.state_dict())
        else:
            self.stale += 1
        return better


def _focal_loss(logits, target, gamma: float, alpha: float) -> torch.Tensor:
    ce = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return (alpha_t * (1 - p_t) ** gamma * ce).mean()


class TransformerHead(Head):
    """Transformer over masked variable-length sequences of every modality."""

    name = "transformer"
    config_class = TransformerConfig

    def fit(
        self, train: SequenceData, val: SequenceData, *, on_epoch: EpochCallback | None = None
    ) -> TransformerHead:
        cfg = self.config
        on_epoch = on_epoch or log_epoch
        with _threads(cfg.threads):
            torch.manual_seed(cfg.seed)
            self.dims_ = train.dims
            self.model_ = SequenceClassifier(self.dims_, cfg)
            self._set_statistics(train)
            n_pos = float(train.labels.sum())
            n_neg = float(len(train) - n_pos)
            self.pos_weight_ = n_neg / max(n_pos, 1.0)
            loss_fn = self._loss(n_pos, n_neg)
            opt = _adamw(self.model_.parameters(), cfg)
            tr = _Tensors(train, self.model_.names, cfg.max_rows)
            va = _Tensors(val, self.model_.names, cfg.max_rows)
            y = torch.from_numpy(train.labels.astype(np.float32))
            order = np.random.default_rng(cfg.seed)
            stopper = _EarlyStopping(lower_is_better=cfg.monitor == "loss")
            self.history_: list[dict] = []
            for epoch in range(1, cfg.epochs + 1):
                start = time.perf_counter()
                train_loss = self._train_epoch(tr, y, order.permutation(tr.n), loss_fn, opt)
                logits = self._logits(va)
                val_loss = float(loss_fn(logits, torch.from_numpy(val.labels.astype(np.float32))))
                scores = torch.sigmoid(logits).numpy().astype(np.float64)
                value = self._monitor(val.labels, scores, val_loss)
                improved = stopper.update(value, epoch, self.model_)
                f1, thr = metrics.best_f1(val.labels, scores)
                report = EpochReport(
                    epoch,
                    cfg.epochs,
                    train_loss,
                    val_loss,
                    metrics.threshold_rows(val.labels, scores),
                    f1,
                    thr,
                    value,
                    improved,
                    time.perf_counter() - start,
                )
                self.history_.append(report.to_json())
                on_epoch(report)
                if stopper.stale >= cfg.patience:
                    log.info("early stop after epoch %d; best epoch %d", epoch, stopper.epoch)
                    break
            self.best_epoch_ = stopper.epoch
            self.model_.load_state_dict(stopper.state)
            self.model_.eval()
        return self

    def _train_epoch(self, tr: _Tensors, y: torch.Tensor, order: np.ndarray, loss_fn, opt) -> float:
        """One pass over the training videos in `order`; the mean training loss."""
        cfg = self.config
        self.model_.train()
        total = 0.0
        for s in range(0, tr.n, cfg.batch_size):
            idx = order[s : s + cfg.batch_size]
            loss = loss_fn(self.model_(*tr.batch(idx)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(self.model_.parameters(), cfg.grad_clip)
            opt.step()
            total += loss.item() * len(idx)
        return total / max(tr.n, 1)

    def predict_proba(self, data: SequenceData) -> np.ndarray:
        self.check_data(data, self.dims_)
        with _threads(self.config.threads):
            logits = self._logits(_Tensors(data, self.model_.names, self.config.max_rows))
        return torch.sigmoid(logits).numpy().astype(np.float64)

    # --- internals ---------------------------------------------------------------------------
    def _set_statistics(self, train: SequenceData) -> None:
        for i, name in enumerate(self.model_.names):
            m = train.modalities[name]
            rows = m.values[m.mask].astype(np.float64)
            if len(rows):
                mean, std = rows.mean(axis=0), rows.std(axis=0)
                # A dimension that never varies (a YOLO class never seen) must not divide by ~0.
                std = np.where(std < 1e-6, 1.0, std)
                getattr(self.model_, f"mean{i}").copy_(torch.from_numpy(mean.astype(np.float32)))
                getattr(self.model_, f"scale{i}").copy_(torch.from_numpy(std.astype(np.float32)))

    def _loss(self, n_pos: float, n_neg: float):
        cfg = self.config
        if cfg.loss == "focal":
            alpha = cfg.focal_alpha if cfg.focal_alpha is not None else n_neg / (n_pos + n_neg)
            return lambda logits, target: _focal_loss(logits, target, cfg.focal_gamma, alpha)
        return nn.BCEWithLogitsLoss(pos_weight=torch.tensor(n_neg / max(n_pos, 1.0)))

    def _monitor(self, y: np.ndarray, scores: np.ndarray, val_loss: float) -> float:
        if self.config.monitor == "loss":
            return val_loss
        if self.config.monitor == "ap":
            from sklearn.metrics import average_precision_score

            return float(average_precision_score(y, scores))
        return metrics.best_f1(y, scores)[0]

    @torch.no_grad()
    def _logits(self, tensors: _Tensors, batch: int = 256) -> torch.Tensor:
        self.model_.eval()
        out = [
            self.model_(*tensors.batch(np.arange(s, min(s + batch, tensors.n))))
            for s in range(0, tensors.n, batch)
        ]
        return torch.cat(out) if out else torch.zeros(0)

    def _meta(self) -> dict[str, Any]:
        return {
            "dims": self.dims_,
            "nhead": self.model_.nhead,
            "best_epoch": self.best_epoch_,
            "pos_weight": self.pos_weight_,
            "history": self.history_,
        }

    def _save_state(self, folder: Path) -> None:
        torch.save(self.model_.state_dict(), folder / WEIGHTS_FILE)

    def _load_state(self, folder: Path, meta: dict[str, Any]) -> None:
        self.dims_ = {k: int(v) for k, v in meta["dims"].items()}
        self.best_epoch_ = meta.get("best_epoch")
        self.pos_weight_ = meta.get("pos_weight")
        self.history_ = meta.get("history", [])
        self.model_ = SequenceClassifier(self.dims_, self.config)
        state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        self.model_.load_state_dict(state)
        self.model_.eval()


def _adamw(params, cfg: TransformerConfig) -> torch.optim.Optimizer:
    params = list(params)
    try:
        # The fused kernel halves the optimiser's share of a small CPU step (torch >= 2.4).
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


class _threads:
    """Set torch's intra-op thread count for a block, then put it back."""

    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self) -> None:
        self.before = torch.get_num_threads()
        if self.n:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.before)
