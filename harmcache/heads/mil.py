"""A per-snippet scorer trained from video labels only: multiple-instance learning, top-k pooling.

The videos are put on a snippet grid (`harmcache.heads.grid`, one snippet per
`snippet_seconds`). Each modality's snippet row is standardised with training statistics and
projected to `d_model`; a modality that does not cover a snippet contributes a learned "absent"
vector instead. The projections are summed (order-free), then a few residual 1-D temporal
convolutions mix neighbouring snippets and a linear layer gives one logit per snippet and
category: one trunk for every category, each pooled to its video logit on its own.

Why convolutions and not attention: their cost is linear in the number of snippets (an hour is
3,600), they treat an event the same wherever it happens, and their receptive field is short
and fixed (kernel 3, dilations 1, 2, ...: 7 snippets with two layers). Weak labels say only that
*something* in a harmful video is harmful; a scorer that sees the whole video can learn to
raise every snippet of it, which blurs the timeline. Local context is enough to smooth single
noisy snippets and to see a short event whole.

Top-k pooling (XD-Violence's HL-Net baseline): a video's logit is the mean of its k highest
snippet logits, k = ⌊T/16⌋ + 1 with T its number of covered snippets, and the loss is
`BCEWithLogitsLoss(pos_weight = n_neg / n_pos)` on that logit (per category, over the labelled
cells: see `harmcache.heads.neural`). k grows with the video, so a long video is not judged on
one snippet (max pooling: one noisy snippet flags a safe video), while only about 6% of it must
look harmful (mean pooling: a short event is diluted by the rest, and the scorer learns to
raise whole harmful videos instead of their events). `pooling="mean"` and `"max"` are there to
compare.

The video score (`predict_categories`, `predict_proba`, and so the threshold) is the sigmoid of
the pooled logit; `snippet_scores` and `timelines` give the per-snippet probabilities: the
localization, of one category (`category=k`, needed when the head scores several). As in
the Transformer, everything per modality is stored under the modality's name and summed in
sorted name order, so the input's modality order changes nothing.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from harmcache.errors import UsageError
from harmcache.heads.data import Moments, SequenceData, modality_moments
from harmcache.heads.grid import DEFAULT_SNIPPET_SECONDS, SnippetGrid, snippet_grid
from harmcache.heads.neural import MONITORS, ModalityInput, NeuralHead
from harmcache.heads.timeline import Timeline
from harmcache.threads import torch_threads

POOLINGS = ("topk", "mean", "max")


def topk_count(valid: torch.Tensor, divisor: int) -> torch.Tensor:
    """(B,) k = ⌊T/divisor⌋ + 1 for each row's T valid snippets (at most T, at least 1)."""
    t = valid.sum(dim=1)
    return torch.minimum(t // divisor + 1, t.clamp(min=1))


def pool_logits(
    logits: torch.Tensor, valid: torch.Tensor, pooling: str = "topk", divisor: int = 16
) -> torch.Tensor:
    """(B,) video logits from (B, S) snippet logits over the `valid` snippets (every row must
    have one): the mean of the top k (`topk`), the mean of all (`mean`) or the largest (`max`)."""
    if pooling == "mean":
        return (logits * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1)
    k = torch.ones_like(valid[:, 0], dtype=torch.long)
    if pooling == "topk":
        k = topk_count(valid, divisor)
    ranked = logits.masked_fill(~valid, float("-inf")).sort(dim=1, descending=True).values
    take = torch.arange(logits.shape[1])[None, :] < k[:, None]
    return torch.where(take, ranked, torch.zeros_like(ranked)).sum(dim=1) / k


class SnippetInput(ModalityInput):
    """A modality's way in, plus the vector used where it does not cover a snippet."""

    def __init__(self, dim: int, d_model: int):
        super().__init__(dim, d_model)
        self.absent = nn.Parameter(torch.zeros(d_model))

    def covered(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.where(mask[..., None], self(x), self.absent)


class TemporalBlock(nn.Module):
    """Pre-norm residual 1-D convolution over snippets."""

    def __init__(self, d_model: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.conv = nn.Conv1d(
            d_model, d_model, kernel_size, padding=dilation * (kernel_size // 2), dilation=dilation
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
        # Zero past the video's end, so padding reads like the conv's own zero padding and a
        # video scores the same in any batch.
        x = self.norm(h) * inside[..., None]
        x = self.conv(x.transpose(1, 2)).transpose(1, 2)
        return (h + self.drop(nn.functional.gelu(x))) * inside[..., None]


class SnippetScorer(nn.Module):
    """Per-modality snippet rows → summed projections → temporal convolutions → (B, S, K)
    logits."""

    def __init__(
        self,
        dims: dict[str, int],
        *,
        d_model: int = 64,
        layers: int = 2,
        kernel_size: int = 3,
        dropout: float = 0.2,
        n_outputs: int = 1,
    ):
        super().__init__()
        self.names = sorted(dims)
        self.inputs = nn.ModuleDict({n: SnippetInput(dims[n], d_model) for n in self.names})
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TemporalBlock(d_model, kernel_size, 2**i, dropout) for i in range(layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, n_outputs)

    def forward(
        self, values: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], inside: torch.Tensor
    ) -> torch.Tensor:
        """Logits (B, S, K) from each modality's (B, S, D) rows and (B, S) masks; `inside`
        (B, S) marks the snippets within each video."""
        h = sum(self.inputs[n].covered(values[n], masks[n]) for n in self.names)
        h = self.drop(h) * inside[..., None]
        for block in self.blocks:
            h = block(h, inside)
        return self.out(self.norm(h))


class _GridTensors:
    """A snippet grid as torch tensors, batched to each batch's longest video."""

    def __init__(self, grid: SnippetGrid):
        self.grid = grid
        self.n = len(grid)
        self.values = {n: torch.from_numpy(m.values) for n, m in grid.data.modalities.items()}
        self.masks = {n: torch.from_numpy(m.mask) for n, m in grid.data.modalities.items()}
        self.inside = torch.from_numpy(grid.inside)
        # A video no modality covers anywhere is pooled over its first snippet (the absent
        # vectors alone), so its score is finite and learned rather than undefined.
        valid = grid.mask.copy()
        uncovered = ~valid.any(axis=1)
        if uncovered.any():  # (and a grid of no videos has no first snippet)
            valid[uncovered, 0] = True
        self.valid = torch.from_numpy(valid)
        self.length = grid.n_snippets

    def batch(self, idx: np.ndarray) -> tuple[tuple, torch.Tensor]:
        s = int(self.length[idx].max(initial=1))
        ti = torch.from_numpy(idx)
        values = {n: v[ti, :s] for n, v in self.values.items()}
        masks = {n: m[ti, :s] for n, m in self.masks.items()}
        return (values, masks, self.inside[ti, :s].float()), self.valid[ti, :s]


class MILHead(NeuralHead):
    """Snippet scorer trained by top-k multiple-instance learning (see the module docstring).

    Parameters
    ----------
    snippet_seconds : length of a snippet, the timeline's resolution. 1 s, as per-second
        evaluation and moderation APIs (1-2 samples per second).
    window_reach : how far a SlowFast window's centre may be from a snippet's centre and still
        cover it (seconds; None: half the window spacing, see `harmcache.heads.grid`).
    d_model : snippet feature width after projection.
    layers : temporal conv blocks; dilations 1, 2, 4, ... (receptive field 1 + (k-1)(2^layers - 1)).
    kernel_size : odd conv kernel, in snippets.
    dropout : on the snippet features and each block's output.
    pooling : topk (k = ⌊T/topk_divisor⌋ + 1), mean or max.
    topk_divisor : 16, as XD-Violence's HL-Net.
    lr, weight_decay : AdamW.
    batch_size : videos per step.
    epochs : most epochs; all of them when `fit` gets no `eval_set`.
    patience : with an `eval_set`, stop after this many epochs without a better validation
        value; the best epoch's weights are restored.
    monitor : loss (default), f1 or ap on validation videos (with K categories, the mean over
        them, as the Transformer's). Loss, because video F1 on a small validation set reaches
        1.0 within a few epochs and would then keep the earliest such epoch, while the loss
        keeps rewarding the sharper snippet scores that follow.
    grad_clip : gradient norm clip; 0 turns it off.
    seed : seeds initialisation, shuffling and dropout.
    threads : torch intra-op threads while fitting and scoring (None: torch's default).
    """

    name = "mil"
    scoring_batch = 64

    def __init__(
        self,
        *,
        # the grid
        snippet_seconds: float = DEFAULT_SNIPPET_SECONDS,
        window_reach: float | None = None,
        # architecture
        d_model: int = 64,
        layers: int = 2,
        kernel_size: int = 3,
        dropout: float = 0.2,
        pooling: str = "topk",
        topk_divisor: int = 16,
        # optimisation
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        batch_size: int = 16,
        epochs: int = 30,
        patience: int = 6,
        monitor: str = "loss",
        grad_clip: float = 1.0,
        # machine
        seed: int = 0,
        threads: int | None = 1,
    ):
        self.snippet_seconds = snippet_seconds
        self.window_reach = window_reach
        self.d_model = d_model
        self.layers = layers
        self.kernel_size = kernel_size
        self.dropout = dropout
        self.pooling = pooling
        self.topk_divisor = topk_divisor
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.monitor = monitor
        self.grad_clip = grad_clip
        self.seed = seed
        self.threads = threads

    def _check_params(self) -> None:
        if min(self.d_model, self.layers, self.batch_size, self.epochs, self.topk_divisor) < 1:
            raise UsageError(
                "d_model, layers, batch_size, epochs and topk_divisor must be at least 1"
            )
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise UsageError(f"kernel_size must be odd and positive, got {self.kernel_size}")
        if not self.snippet_seconds > 0:
            raise UsageError(f"snippet_seconds must be positive, got {self.snippet_seconds}")
        if self.pooling not in POOLINGS:
            raise UsageError(f"pooling must be topk, mean or max, got {self.pooling!r}")
        if self.monitor not in MONITORS:
            raise UsageError(f"monitor must be f1, ap or loss, got {self.monitor!r}")
        if not 0 <= self.dropout < 1:
            raise UsageError(f"dropout must be in [0, 1), got {self.dropout}")

    # --- the timeline -------------------------------------------------------------------------
    def grid(self, X: SequenceData) -> SnippetGrid:
        """X on this head's snippet grid."""
        return snippet_grid(X, self.snippet_seconds, window_reach=self.window_reach)

    def snippet_scores(self, X: SequenceData, category: int | None = None) -> list[np.ndarray]:
        """Per video, the probability of harm of each snippet a modality covers, in time order
        (the times are in `timelines`); of `category` as in `timelines`."""
        return [t.score for t in self.timelines(X, category)]

    def timelines(self, X: SequenceData, category: int | None = None) -> list[Timeline]:
        """Per video, its covered snippets' start, end and probability of harm in `category`
        (a column index of the labels; may be left out when the head scores one category)."""
        grid = self.grid(self._check_input(X))
        k = self._category_index(category)
        proba = self._snippet_proba(_GridTensors(grid))[..., k]
        return [
            Timeline(grid.start[i, m], grid.end[i, m], proba[i, m].astype(np.float64))
            for i, m in enumerate(grid.mask)
        ]

    def _category_index(self, category: int | None) -> int:
        if category is None and self.n_outputs_ == 1:
            return 0
        if category is None:
            raise UsageError(
                f"this mil head scores {self.n_outputs_} categories: pass category=k "
                f"(0 to {self.n_outputs_ - 1}) for one category's timelines"
            )
        if not 0 <= category < self.n_outputs_:
            raise UsageError(
                f"category must be 0 to {self.n_outputs_ - 1} for this head, got {category}"
            )
        return int(category)

    # --- fitting ------------------------------------------------------------------------------
    def _new_model(self) -> SnippetScorer:
        return SnippetScorer(
            self.dims_,
            d_model=self.d_model,
            layers=self.layers,
            kernel_size=self.kernel_size,
            dropout=self.dropout,
            n_outputs=self.n_outputs_,
        )

    def _tensors(self, X: SequenceData) -> _GridTensors:
        return _GridTensors(self.grid(X))

    def _training_set(self, X: SequenceData) -> tuple[_GridTensors, dict[str, Moments]]:
        tensors = self._tensors(X)
        # The statistics of the snippet rows the model sees, not of the frames averaged in them.
        modalities = tensors.grid.data.modalities
        return tensors, {name: modality_moments(m) for name, m in modalities.items()}

    def _forward(self, batch: tuple[tuple, torch.Tensor]) -> torch.Tensor:
        inputs, valid = batch
        snippets = self.model_(*inputs)  # (B, S, K)
        b, s, k = snippets.shape
        # Each (video, category) pair pooled as a row of its own: (B * K, S), video-major.
        rows = snippets.transpose(1, 2).reshape(b * k, s)
        valid = valid.repeat_interleave(k, dim=0)
        pooled = pool_logits(rows, valid, self.pooling, self.topk_divisor)
        return pooled.view(b, k)

    # --- scoring ------------------------------------------------------------------------------
    def _category_proba(self, X: SequenceData) -> np.ndarray:
        tensors = self._tensors(X)
        with torch_threads(self.threads):
            logits = self._logits(tensors).numpy()
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))

    @torch.no_grad()
    def _snippet_proba(self, tensors: _GridTensors, batch: int = 64) -> np.ndarray:
        """(N, S, K) snippet probabilities on the grid (0 past each video's end)."""
        out = np.zeros((*tensors.grid.inside.shape, self.n_outputs_), dtype=np.float32)
        with torch_threads(self.threads):
            self.model_.eval()
            for s in range(0, tensors.n, batch):
                idx = np.arange(s, min(s + batch, tensors.n))
                inputs, _ = tensors.batch(idx)
                proba = torch.sigmoid(self.model_(*inputs)).numpy()
                out[idx, : proba.shape[1]] = proba
        return np.where(tensors.grid.inside[..., None], out, 0)
