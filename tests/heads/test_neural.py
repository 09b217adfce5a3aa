"""The neural-head base: a head that brings only a model and its data shaping gets the training
loop (seeded batches, early stopping, the best epoch's weights), scoring and saving."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from harmcache.heads.base import EpochReport
from harmcache.heads.data import SequenceData, modality_moments
from harmcache.heads.neural import EarlyStopping, ModalityInput, NeuralHead, ShuffledBatches
from tests.heads.test_input import videos


class MeanRows(nn.Module):
    """Each video's mean CLIP row → one logit per category."""

    def __init__(self, dim: int, n_outputs: int = 1):
        super().__init__()
        self.inputs = nn.ModuleDict({"clip": ModalityInput(dim, 4)})
        self.out = nn.Linear(4, n_outputs)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.out(self.inputs["clip"](rows))


class _Means:
    def __init__(self, data: SequenceData):
        m = data.modalities["clip"]
        means = (m.values * m.mask[..., None]).sum(1) / np.maximum(m.mask.sum(1), 1)[:, None]
        self.rows = torch.from_numpy(means.astype(np.float32))
        self.n = len(data)

    def batch(self, idx: np.ndarray) -> torch.Tensor:
        return self.rows[torch.from_numpy(idx)]


class MeanHead(NeuralHead):
    """The least a neural head provides."""

    name = "mean-rows"

    def __init__(self, *, lr=1e-2, weight_decay=0.0, batch_size=4, epochs=6, patience=2,
                 monitor="loss", grad_clip=1.0, seed=0, threads=1):  # fmt: skip
        self.lr, self.weight_decay, self.batch_size = lr, weight_decay, batch_size
        self.epochs, self.patience, self.monitor = epochs, patience, monitor
        self.grad_clip, self.seed, self.threads = grad_clip, seed, threads

    def _new_model(self):
        return MeanRows(self.dims_["clip"], self.n_outputs_)

    def _tensors(self, X):
        return _Means(X)

    def _training_set(self, X):
        return _Means(X), {"clip": modality_moments(X.modalities["clip"])}

    def _forward(self, batch):
        return self.model_(batch)


def quiet(report):
    pass


def test_the_base_trains_scores_and_saves_a_minimal_head(tmp_path):
    reports: list[EpochReport] = []
    head = MeanHead(epochs=5).fit(videos(), on_epoch=reports.append)
    assert [r.epoch for r in reports] == [1, 2, 3, 4, 5] and head.best_epoch_ == 5
    assert len(head.history_) == 5 and reports[0].val_loss is None
    proba = head.predict_proba(videos(8, seed=1))
    assert proba.shape == (8, 2) and np.isfinite(proba).all()
    # The training statistics were copied into the model.
    clip = videos().modalities["clip"]
    np.testing.assert_allclose(
        head.model_.inputs["clip"].mean.numpy(), modality_moments(clip).mean, rtol=1e-6
    )
    head.save(tmp_path)
    again = MeanHead.load(tmp_path)
    np.testing.assert_array_equal(again.predict_proba(videos(8, seed=1)), proba)
    assert again.best_epoch_ == 5 and again.history_ == head.history_


def test_early_stopping_ends_on_the_best_epochs_weights():
    reports: list[EpochReport] = []
    weights: dict[int, dict] = {}
    head = MeanHead(epochs=30, patience=1, lr=1.0, grad_clip=0.0)

    def record(report: EpochReport) -> None:
        reports.append(report)
        weights[report.epoch] = copy.deepcopy(head.model_.state_dict())

    head.fit(videos(), eval_set=videos(12, seed=1), on_epoch=record)
    assert len(reports) < 30 and not reports[-1].improved  # stopped after a stale epoch
    assert head.best_epoch_ == min(reports, key=lambda r: r.val_loss).epoch
    best = weights[head.best_epoch_]
    assert all(torch.equal(head.model_.state_dict()[k], best[k]) for k in best)
    assert head.best_epoch_ != reports[-1].epoch and not head.model_.training


def test_the_same_seed_fits_the_same_weights():
    a = MeanHead(seed=4).fit(videos(), on_epoch=quiet).model_.state_dict()
    b = MeanHead(seed=4).fit(videos(), on_epoch=quiet).model_.state_dict()
    c = MeanHead(seed=5).fit(videos(), on_epoch=quiet).model_.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_shuffled_batches_visit_every_video_once_per_epoch_in_a_seeded_order():
    batches = ShuffledBatches(_Means(videos(10)), np.arange(10) % 2, seed=0, size=4)
    first = [len(t) for _, t in batches.epoch(1)]
    assert first == [4, 4, 2]
    again = ShuffledBatches(_Means(videos(10)), np.arange(10) % 2, seed=0, size=4)
    a = torch.cat([rows for rows, _ in again.epoch(1)])
    b = torch.cat([rows for rows, _ in again.epoch(2)])
    assert sorted(a[:, 0].tolist()) == sorted(b[:, 0].tolist()) and not torch.equal(a, b)


def test_early_stopping_counts_stale_epochs():
    model = nn.Linear(1, 1)
    stopper = EarlyStopping(lower_is_better=True)
    assert [stopper.update(v, e, model) for e, v in enumerate([3.0, 2.0, 2.5, 2.0], 1)] == [
        True,
        True,
        False,
        False,
    ]
    assert stopper.epoch == 2 and stopper.stale == 2 and stopper.best == 2.0
