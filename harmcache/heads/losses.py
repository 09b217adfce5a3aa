"""The neural heads' losses: binary cross-entropy and focal loss on (B, K) logits, one column
per category, averaged over the labelled cells only.

A target of NaN (the category is not labelled for that video) is masked: it adds nothing to the
loss and nothing to the gradient, so a video may teach some categories and not others. Each
category has its own class weight (`pos_weight`, n_neg / n_pos of its labelled training
videos) or focal `alpha`. The labelled cells are selected before the loss is taken, so with one
fully labelled category the numbers are those of the plain mean loss, bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def labelled_cells(target: torch.Tensor) -> torch.Tensor:
    """(B, K) bool: the cells whose target is known (not NaN)."""
    return ~torch.isnan(target)


class MaskedBCE:
    """Mean `BCEWithLogitsLoss(pos_weight)` over the labelled cells of (B, K) logits."""

    def __init__(self, pos_weight: np.ndarray):
        self.pos_weight = torch.tensor(
            np.asarray(pos_weight, dtype=np.float64), dtype=torch.float32
        )

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        known = labelled_cells(target)
        return nn.functional.binary_cross_entropy_with_logits(
            logits[known], target[known], pos_weight=self.pos_weight.expand_as(target)[known]
        )


class MaskedFocal:
    """Mean focal loss (focusing exponent `gamma`, positive-class weight `alpha` per category)
    over the labelled cells of (B, K) logits."""

    def __init__(self, gamma: float, alpha: np.ndarray):
        alpha = np.asarray(alpha, dtype=np.float64)
        self.gamma = gamma
        # Both weights from float64, as a Python float alpha gives them.
        self.alpha = torch.tensor(alpha, dtype=torch.float32)
        self.beta = torch.tensor(1 - alpha, dtype=torch.float32)

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        known = labelled_cells(target)
        x, t = logits[known], target[known]
        ce = nn.functional.binary_cross_entropy_with_logits(x, t, reduction="none")
        p = torch.sigmoid(x)
        p_t = p * t + (1 - p) * (1 - t)
        alpha_t = self.alpha.expand_as(target)[known] * t + self.beta.expand_as(target)[known] * (
            1 - t
        )
        return (alpha_t * (1 - p_t) ** self.gamma * ce).mean()
