"""What the neural heads (Transformer, MIL) share: a modality's way in, the training loop with
early stopping on validation, the statistics and the weights they save.

`NeuralHead._train` is the whole loop, top to bottom: for each epoch, batches in a seeded
order, forward, loss, step; then, given a validation set, score it, update early stopping and
report; stop after `patience` epochs without improvement; end on the best epoch's weights.
A neural head brings only its model and its data shaping:

- `_new_model()`: the torch module, with a `ModalityInput` per modality in `.inputs`;
- `_tensors(X)`: a `SequenceData` as the model's input, with `.n` videos and `.batch(idx)`;
- `_training_set(X)`: those tensors and the per-modality `Moments` that standardise them;
- `_forward(batch)`: one batch's (B, K) video logits, one column per category.

One trunk scores every category: the model's last layer has `n_outputs_` outputs. The loss is
taken over the labelled cells only (`harmcache.heads.losses`), with a class weight per category;
a batch with no labelled cell is skipped. Early stopping watches the mean over the categories
of each one's validation value on its labelled videos (categories whose validation videos hold
one class only are left out of F1 and AP); the loss is the masked mean loss. With one category
this is the one-column case of the same code, and fits what a one-category head always fitted.

Everything draws on torch's generator in one order (seed, model initialisation, the dropout
of each step), and on a NumPy generator of the same seed for the batch order, so a seed
repeats a fit bit for bit on the CPU.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from harmcache import metrics
from harmcache.heads.base import EpochCallback, EpochReport, Head, Validation
from harmcache.heads.data import Moments, SequenceData
from harmcache.heads.losses import MaskedBCE, labelled_cells
from harmcache.heads.targets import class_counts, pos_weights, scorable
from harmcache.threads import torch_threads

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.pt"
MONITORS = ("f1", "ap", "loss")


class ModalityInput(nn.Module):
    """One modality's way in: standardise with training statistics, project to `d_model`, add
    the modality's embedding."""

    def __init__(self, dim: int, d_model: int):
        super().__init__()
        # Training-set statistics, stored with the weights.
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.project = nn.Linear(dim, d_model)
        self.embedding = nn.Parameter(torch.randn(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project((x - self.mean) / self.scale) + self.embedding


class Tensors(Protocol):
    """A head's data shaping of N videos: `batch(idx)` is what `_forward` takes."""

    n: int

    def batch(self, idx: np.ndarray) -> Any: ...


class Batches(Protocol):
    """A training set, epoch by epoch: `(batch, (B, K) targets)` pairs, NaN where a category is
    not labelled."""

    def epoch(self, epoch: int) -> Iterator[tuple[Any, torch.Tensor]]: ...


class ShuffledBatches:
    """Videos held in memory: each epoch visits them in a new order drawn from `seed`."""

    def __init__(self, tensors: Tensors, y: np.ndarray, seed: int, size: int):
        self.tensors = tensors
        self.target = torch.from_numpy(y.reshape(len(y), -1).astype(np.float32))
        self.order = np.random.default_rng(seed)
        self.size = size

    def epoch(self, epoch: int) -> Iterator[tuple[Any, torch.Tensor]]:
        idx = self.order.permutation(self.tensors.n)
        for start in range(0, self.tensors.n, self.size):
            take = idx[start : start + self.size]
            yield self.tensors.batch(take), self.target[take]


class EarlyStopping:
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


def adamw(params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW, fused where this torch has the kernel."""
    params = list(params)
    try:
        # The fused kernel halves the optimiser's share of a small CPU step (torch >= 2.4).
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


class NeuralHead(Head):
    """A head trained by AdamW on torch tensors (see the module docstring). Subclasses hold the
    settings `lr`, `weight_decay`, `batch_size`, `epochs`, `patience`, `monitor`, `grad_clip`,
    `seed` and `threads`.

    Learned: `model_`, `pos_weight_` ((K,) n_neg / n_pos of each category's labelled training
    videos), `best_epoch_` and `history_` (each epoch's `EpochReport.to_json`)."""

    scoring_batch = 256
    """Videos per forward pass when scoring."""

    # --- what each neural head provides -------------------------------------------------------
    def _new_model(self) -> nn.Module:
        raise NotImplementedError

    def _tensors(self, X: SequenceData) -> Tensors:
        raise NotImplementedError

    def _training_set(self, X: SequenceData) -> tuple[Tensors, dict[str, Moments]]:
        raise NotImplementedError

    def _forward(self, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    # --- training -----------------------------------------------------------------------------
    def _fit(
        self, X: SequenceData, y: np.ndarray, val: Validation | None, on_epoch: EpochCallback
    ) -> None:
        tensors, moments = self._training_set(X)
        batches = ShuffledBatches(tensors, y, self.seed, self.batch_size)
        self._train(batches, moments, y, val, on_epoch)

    def _train(
        self,
        batches: Batches,
        moments: dict[str, Moments],
        y: np.ndarray,
        val: Validation | None,
        on_epoch: EpochCallback,
    ) -> None:
        """Fit on `batches`, standardised by `moments`, with early stopping on `val`; `y` is
        the (n, K) training labels (their class counts weigh the loss)."""
        with torch_threads(self.threads):
            torch.manual_seed(self.seed)
            self.model_ = self._new_model()
            self._set_statistics(moments)
            self.pos_weight_ = pos_weights(y)
            loss_fn = self._loss_fn(*class_counts(y))
            opt = adamw(self.model_.parameters(), self.lr, self.weight_decay)
            if val is not None:
                val_tensors = self._tensors(val[0])
                val_target = torch.from_numpy(val[1].astype(np.float32))
            stopper = EarlyStopping(lower_is_better=self.monitor == "loss")
            self.history_ = []
            for epoch in range(1, self.epochs + 1):
                start = time.perf_counter()
                # Train: one pass over the batches.
                self.model_.train()
                total, seen = 0.0, 0
                for batch, target in batches.epoch(epoch):
                    cells = int(labelled_cells(target).sum())
                    if not cells:  # nothing labelled in this batch: nothing to learn
                        continue
                    loss = loss_fn(self._forward(batch), target)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    if self.grad_clip:
                        nn.utils.clip_grad_norm_(self.model_.parameters(), self.grad_clip)
                    opt.step()
                    total += loss.item() * cells
                    seen += cells
                train_loss = total / max(seen, 1)
                # Validate and remember the best epoch (without a validation set: just report).
                if val is None:
                    seconds = time.perf_counter() - start
                    report = EpochReport(epoch, self.epochs, train_loss, seconds)
                else:
                    logits = self._logits(val_tensors)
                    val_loss = float(loss_fn(logits, val_target))
                    scores = torch.sigmoid(logits).numpy().astype(np.float64)
                    value = self._monitor_value(val[1], scores, val_loss)
                    improved = stopper.update(value, epoch, self.model_)
                    report = EpochReport.validated(
                        epoch,
                        self.epochs,
                        train_loss,
                        time.perf_counter() - start,
                        y_val=val[1],
                        scores=scores,
                        val_loss=val_loss,
                        monitor=value,
                        improved=improved,
                    )
                on_epoch(report)  # first: the callback may add to the report (localization)
                self.history_.append(report.to_json())
                # Early stop.
                if val is not None and stopper.stale >= self.patience:
                    log.info("early stop after epoch %d; best epoch %d", epoch, stopper.epoch)
                    break
            # Keep the best epoch's weights.
            if val is None:
                self.best_epoch_ = self.epochs
            else:
                self.best_epoch_ = stopper.epoch
                self.model_.load_state_dict(stopper.state)
            self.model_.eval()

    def _set_statistics(self, moments: dict[str, Moments]) -> None:
        """Copy each modality's training mean and standard deviation into the model."""
        for name, m in moments.items():
            if m.count:
                # A dimension that never varies (a YOLO class never seen) must not divide by ~0.
                std = np.where(m.std < 1e-6, 1.0, m.std)
                inputs = self.model_.inputs[name]
                inputs.mean.copy_(torch.from_numpy(m.mean.astype(np.float32)))
                inputs.scale.copy_(torch.from_numpy(std.astype(np.float32)))

    def _loss_fn(self, n_pos: np.ndarray, n_neg: np.ndarray):
        """Masked BCEWithLogitsLoss with pos_weight = n_neg / n_pos per category ((K,) counts of
        the labelled training videos): in each category the classes weigh the same."""
        return MaskedBCE(n_neg / np.maximum(n_pos, 1.0))

    def _monitor_value(self, y: np.ndarray, scores: np.ndarray, val_loss: float) -> float:
        """The masked validation loss, or the mean over the categories with both classes in
        `y` (n, K) of their F1 or AP on their labelled rows."""
        if self.monitor == "loss":
            return val_loss
        from sklearn.metrics import average_precision_score

        values = [
            float(average_precision_score(labels, scores[rows, k]))
            if self.monitor == "ap"
            else metrics.best_f1(labels, scores[rows, k])[0]
            for k, rows, labels in scorable(y)
        ]
        return float(np.mean(values))

    # --- scoring ------------------------------------------------------------------------------
    def _category_proba(self, X: SequenceData) -> np.ndarray:
        with torch_threads(self.threads):
            logits = self._logits(self._tensors(X))
        return torch.sigmoid(logits).numpy().astype(np.float64)

    @torch.no_grad()
    def _logits(self, tensors: Tensors) -> torch.Tensor:
        """(N, K) video logits, `scoring_batch` videos at a time, in eval mode."""
        self.model_.eval()
        n, size = tensors.n, self.scoring_batch
        out = [
            self._forward(tensors.batch(np.arange(s, min(s + size, n)))) for s in range(0, n, size)
        ]
        return torch.cat(out) if out else torch.zeros(0, self.n_outputs_)

    # --- saving -------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "best_epoch": self.best_epoch_,
            "pos_weight": self.pos_weight_.tolist(),
            "history": self.history_,
        }

    def _save_state(self, folder: Path) -> None:
        torch.save(self.model_.state_dict(), folder / WEIGHTS_FILE)

    def _load_state(self, folder: Path, state: dict[str, Any]) -> None:
        self.best_epoch_ = state.get("best_epoch")
        # A list per category; a float in heads saved before categories.
        self.pos_weight_ = np.atleast_1d(np.asarray(state.get("pos_weight"), dtype=np.float64))
        self.history_ = state.get("history", [])
        weights = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        self._check_weights(folder, weights)
        self.model_ = self._new_model()
        self.model_.load_state_dict(weights)
        self.model_.eval()

    def _check_weights(self, folder: Path, weights: dict[str, torch.Tensor]) -> None:
        """Refuse saved weights this version cannot read (raise UsageError)."""
