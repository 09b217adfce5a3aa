"""What the neural heads (Transformer, MIL) share: a modality's way in, the epoch loop with
early stopping on validation, and the optimiser."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from harmcache.heads.base import EpochCallback, EpochReport

log = logging.getLogger(__name__)


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


def run_epochs(
    head: Any,
    stopper: EarlyStopping,
    train_epoch: Callable[[int], float],
    validate: Callable[[int, float, float], EpochReport] | None,
    on_epoch: EpochCallback,
) -> None:
    """The epoch loop the neural heads share: train an epoch, validate it when there is a
    validation set (else report the training loss), stop after `head.patience` epochs without
    improvement, and end on the best epoch's weights."""
    head.history_ = []
    for epoch in range(1, head.epochs + 1):
        start = time.perf_counter()
        train_loss = train_epoch(epoch)
        if validate is None:
            report = EpochReport(epoch, head.epochs, train_loss, time.perf_counter() - start)
        else:
            report = validate(epoch, train_loss, start)
        on_epoch(report)  # first: the callback may add to the report (per-epoch localization)
        head.history_.append(report.to_json())
        if validate is not None and stopper.stale >= head.patience:
            log.info("early stop after epoch %d; best epoch %d", epoch, stopper.epoch)
            break
    if validate is None:
        head.best_epoch_ = head.epochs
    else:
        head.best_epoch_ = stopper.epoch
        head.model_.load_state_dict(stopper.state)
    head.model_.eval()


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
