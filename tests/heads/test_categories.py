"""Heads that score several moderation categories at once: (n, K) labels with NaN where a
category is not labelled (masked, never read as 0), a class weight per category, one output per
category, saving and loading, and one category being exactly the 1-D fit of before."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from harmcache.errors import DataError, UsageError
from harmcache.heads.base import load_head, make_head
from harmcache.heads.data import Modality, SequenceData
from harmcache.heads.losses import MaskedBCE, MaskedFocal
from harmcache.heads.report import EpochReport
from harmcache.heads.targets import check_targets
from tests.heads.test_input import Stream, videos

HEADS = ["transformer", "mil", "lightgbm", "logreg"]
TINY = {
    "transformer": {"epochs": 2, "d_model": 8, "dim_feedforward": 16, "batch_size": 8},
    "mil": {"epochs": 2, "d_model": 8, "batch_size": 8},
    "lightgbm": {"n_estimators": 10},
    "logreg": {},
}
# Enough to learn the planted signals below in a second or two each.
LEARN = {
    "transformer": {"epochs": 12, "d_model": 16, "dim_feedforward": 32, "layers": 1,
                    "batch_size": 16, "lr": 3e-3, "dropout": 0.1},
    "mil": {"epochs": 12, "d_model": 16, "batch_size": 16, "lr": 3e-3},
    "lightgbm": {"n_estimators": 60},
    "logreg": {},
}  # fmt: skip


def quiet(report):
    pass


def categories(n: int, k: int = 3, *, seed: int = 0, hidden: float = 0.2) -> SequenceData:
    """n videos of 3-6 s (CLIP every 0.5 s, SlowFast every 2 s) with k categories, each drawn
    on its own (40 % harmful); category j shifts every row's feature j by 2 in each modality.
    A share `hidden` of the label cells is NaN (not labelled); the signal is there anyway."""
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, k)) < 0.4).astype(np.float64)
    duration = rng.uniform(3, 6, n)
    modalities = {}
    for name, dim, step in (("clip", 8, 0.5), ("slowfast", 6, 2.0)):
        stamps = [np.arange(step / 2, d, step) for d in duration]
        length = max(map(len, stamps))
        values = np.zeros((n, length, dim), dtype=np.float32)
        mask = np.zeros((n, length), dtype=bool)
        stamp = np.zeros((n, length))
        for i, t in enumerate(stamps):
            rows = rng.normal(size=(len(t), dim))
            rows[:, :k] += 2.0 * truth[i]
            values[i, : len(t)], mask[i, : len(t)], stamp[i, : len(t)] = rows, True, t
        position = np.where(mask, stamp / duration[:, None], 0).astype(np.float32)
        modalities[name] = Modality(values, mask, stamp, position)
    labels = np.where(rng.random((n, k)) < hidden, np.nan, truth)
    return SequenceData([f"v{i}" for i in range(n)], modalities, labels, duration)


@pytest.fixture(scope="module")
def split():
    data = categories(150)
    return data[np.arange(100)], data[np.arange(100, 150)]


# --- one category is the fit of before ----------------------------------------------------------
@pytest.mark.parametrize("name", HEADS)
def test_a_1d_y_and_an_n_by_1_y_fit_the_same_head(name):
    train, val = videos(24), videos(12, seed=1)
    flat = make_head(name, **TINY[name]).fit(train, eval_set=val, on_epoch=quiet)
    column = make_head(name, **TINY[name]).fit(
        train, train.labels[:, None], eval_set=(val, val.labels[:, None]), on_epoch=quiet
    )
    assert flat.n_outputs_ == column.n_outputs_ == 1
    np.testing.assert_array_equal(flat.predict_proba(val), column.predict_proba(val))
    np.testing.assert_array_equal(flat.predict_categories(val), column.predict_categories(val))
    np.testing.assert_array_equal(flat.predict_categories(val)[:, 0], flat.predict_proba(val)[:, 1])


@pytest.mark.parametrize("name", HEADS)
def test_a_head_saved_before_categories_loads_as_one_category(name, tmp_path):
    head = make_head(name, **TINY[name]).fit(videos(24), on_epoch=quiet)
    head.save(tmp_path)
    # Rewrite the saved state the way heads were saved before they had categories.
    meta = json.loads((tmp_path / "head.json").read_text())
    state = meta["state"]
    del state["n_outputs"]
    if "pos_weight" in state:
        state["pos_weight"] = state["pos_weight"][0]
    if "best_iterations" in state:
        state["best_iteration"] = state.pop("best_iterations")[0]
    (tmp_path / "head.json").write_text(json.dumps(meta))
    if name == "logreg":
        saved = json.loads((tmp_path / "logreg.json").read_text())
        saved["coef"], saved["intercept"] = saved["coef"][0], saved["intercept"][0]
        (tmp_path / "logreg.json").write_text(json.dumps(saved))
    again = load_head(tmp_path)
    assert again.n_outputs_ == 1
    other = videos(8, seed=2)
    np.testing.assert_array_equal(again.predict_proba(other), head.predict_proba(other))


# --- masked targets ---------------------------------------------------------------------------
def test_the_masked_losses_ignore_unlabelled_cells():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 3, generator=gen, requires_grad=True)
    nan = np.nan
    cells = [[1, 0, nan], [0, nan, 1], [1, 1, 0], [nan, 0, 0], [0, 1, nan], [1, 0, 1]]
    target = torch.tensor(cells, dtype=torch.float32)
    weight = np.array([2.0, 0.5, 3.0])
    loss = MaskedBCE(weight)(logits, target)
    loss.backward()
    known = ~torch.isnan(target)
    # The plain weighted BCE of the labelled cells alone, each with its category's weight.
    alone = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[known], target[known], pos_weight=torch.tensor(weight).float().expand(6, 3)[known]
    )
    assert loss.item() == pytest.approx(alone.item(), abs=1e-6)
    assert torch.all(logits.grad[~known] == 0) and torch.all(logits.grad[known] != 0)
    as_zero = MaskedBCE(weight)(logits, torch.nan_to_num(target, nan=0.0))
    assert as_zero.item() != pytest.approx(loss.item(), abs=1e-4)
    focal = logits.detach().clone().requires_grad_(True)
    MaskedFocal(2.0, np.array([0.3, 0.5, 0.7]))(focal, target).backward()
    assert torch.all(focal.grad[~known] == 0)


@pytest.mark.parametrize("name", HEADS)
def test_nan_is_not_read_as_0_or_1(name):
    data = categories(40, 2, seed=1, hidden=0.0)
    y = data.labels.copy()
    y[::3, 1] = np.nan
    fits = {}
    for fill in (None, 0.0, 1.0):
        given = y if fill is None else np.nan_to_num(y, nan=fill)
        head = make_head(name, **TINY[name]).fit(data, given, on_epoch=quiet)
        fits[fill] = head.predict_categories(data)
    assert not np.allclose(fits[None][:, 1], fits[0.0][:, 1], rtol=0, atol=1e-6)
    assert not np.allclose(fits[None][:, 1], fits[1.0][:, 1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["lightgbm", "logreg"])
def test_a_tabular_category_is_fitted_on_its_labelled_videos_only(name):
    data = categories(60, 2, seed=2)
    head = make_head(name, **TINY[name]).fit(data, on_epoch=quiet)
    for k in range(2):
        alone = make_head(name, **TINY[name]).fit(data, data.labels[:, k], on_epoch=quiet)
        np.testing.assert_array_equal(
            head.predict_categories(data)[:, k], alone.predict_categories(data)[:, 0]
        )
    if name == "lightgbm":  # its features do not depend on the other videos: fit the subset
        rows = np.flatnonzero(~np.isnan(data.labels[:, 1]))
        subset = make_head(name, **TINY[name]).fit(data[rows], data.labels[rows, 1], on_epoch=quiet)
        np.testing.assert_array_equal(
            head.predict_categories(data)[:, 1], subset.predict_categories(data)[:, 0]
        )


@pytest.mark.parametrize("name", ["transformer", "mil"])
def test_each_category_has_its_own_pos_weight_over_its_labelled_videos(name):
    data = categories(40, 3, seed=3)
    y = data.labels
    head = make_head(name, **TINY[name]).fit(data, on_epoch=quiet)
    labelled = ~np.isnan(y)
    n_pos = np.nansum(y, axis=0)
    expected = (labelled.sum(axis=0) - n_pos) / n_pos
    np.testing.assert_allclose(head.pos_weight_, expected, rtol=1e-12)
    assert len(set(np.round(head.pos_weight_, 6))) == 3  # the categories really differ
    loss = head._loss_fn(n_pos, labelled.sum(axis=0) - n_pos)
    np.testing.assert_allclose(loss.pos_weight.numpy(), expected, rtol=1e-6)


def test_the_monitor_is_the_mean_over_categories_of_their_labelled_rows():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    y = (rng.random((30, 3)) < 0.5).astype(float)
    y[:5, 0] = np.nan
    y[:, 2] = np.where(np.arange(30) < 10, np.nan, 0.0)  # one class in validation: skipped
    scores = rng.random((30, 3))
    head = make_head("transformer", monitor="ap")
    expected = np.mean(
        [
            average_precision_score(y[5:, 0], scores[5:, 0]),
            average_precision_score(y[:, 1], scores[:, 1]),
        ]
    )
    assert head._monitor_value(y, scores, 0.7) == pytest.approx(expected, abs=1e-12)
    assert make_head("transformer", monitor="loss")._monitor_value(y, scores, 0.7) == 0.7


# --- many categories ------------------------------------------------------------------------
@pytest.mark.parametrize("name", HEADS)
def test_three_planted_categories_are_each_learned(name, split, tmp_path):
    train, val = split
    reports = []
    head = make_head(name, **LEARN[name])
    with pytest.raises(NotFittedError, match=r"is not fitted yet"):
        head.predict_categories(val)
    head.fit(train, eval_set=val, on_epoch=reports.append)
    assert head.n_outputs_ == 3
    scores = head.predict_categories(val)
    assert scores.shape == (len(val), 3) and np.all((scores >= 0) & (scores <= 1))
    for k in range(3):
        rows = ~np.isnan(val.labels[:, k])
        assert roc_auc_score(val.labels[rows, k], scores[rows, k]) >= 0.9, k
    report = reports[-1]
    assert [c["category"] for c in report.categories] == [0, 1, 2]
    assert "mean over 3 of 3 categories: best F1" in report.format()
    assert report.to_json()["categories"] == report.categories
    head.save(tmp_path)
    again = load_head(tmp_path)
    np.testing.assert_array_equal(again.predict_categories(val), scores)
    assert getattr(again, "history_", None) == getattr(head, "history_", None)


@pytest.mark.parametrize("name", HEADS)
def test_many_categories_round_trip_and_refuse_predict_proba(name, tmp_path):
    data = categories(40, 3, seed=4)
    head = make_head(name, **TINY[name]).fit(data, on_epoch=quiet)
    head.save(tmp_path)
    again = load_head(tmp_path)
    assert again.n_outputs_ == 3
    np.testing.assert_array_equal(again.predict_categories(data), head.predict_categories(data))
    assert again.predict_categories(data[np.arange(0)]).shape == (0, 3)
    message = r"scores 3 categories; predict_proba and predict are for one category: use " \
        r"predict_categories\(X\) for the \(n, 3\) probabilities"  # fmt: skip
    for method in (again.predict_proba, again.predict):
        with pytest.raises(UsageError, match=message):
            method(data)


def test_mil_timelines_per_category(tmp_path):
    data = categories(40, 2, seed=5)
    head = make_head("mil", **TINY["mil"]).fit(data, on_epoch=quiet)
    part = data[np.arange(4)]
    for k in range(2):
        timelines = head.timelines(part, category=k)
        assert [len(t) for t in timelines] == [len(s) for s in head.snippet_scores(part, k)]
        assert all(np.all((t.score >= 0) & (t.score <= 1)) for t in timelines)
    assert not np.array_equal(head.timelines(part, 0)[0].score, head.timelines(part, 1)[0].score)
    with pytest.raises(UsageError, match=r"scores 2 categories: pass category=k \(0 to 1\)"):
        head.timelines(part)
    with pytest.raises(UsageError, match=r"category must be 0 to 1 for this head, got 2"):
        head.snippet_scores(part, 2)
    one = make_head("mil", **TINY["mil"]).fit(videos(), on_epoch=quiet)
    a, b = one.timelines(videos(4, seed=1)), one.timelines(videos(4, seed=1), category=0)
    assert all(np.array_equal(x.score, y.score) for x, y in zip(a, b))


def test_fit_stream_trains_many_categories():
    data = categories(40, 2, seed=6)
    head = make_head("transformer", **TINY["transformer"]).fit_stream(Stream(data))
    assert head.n_outputs_ == 2 and head.predict_categories(data).shape == (40, 2)
    with pytest.raises(UsageError, match=r"eval_set has labels for 1 categories, X for 2"):
        head.fit_stream(Stream(data), eval_set=videos())
    single = Stream(data)
    single.labels = np.zeros(40)
    with pytest.raises(DataError, match=r"the stream needs both classes; all 40 videos are"):
        head.fit_stream(single)


# --- the reports --------------------------------------------------------------------------------
def test_a_category_with_one_class_in_validation_is_skipped_not_a_crash():
    data = categories(60, 3, seed=7)
    val = categories(30, 3, seed=8)
    val.labels[:, 2] = np.where(np.arange(30) < 12, 0.0, np.nan)
    reports: list[EpochReport] = []
    make_head("transformer", **TINY["transformer"]).fit(data, eval_set=val, on_epoch=reports.append)
    report = reports[-1]
    skipped = report.categories[2]
    assert skipped == {"category": 2, "labelled": 12, "harmful": 0, "best_f1": None,
                       "best_threshold": None, "ap": None}  # fmt: skip
    assert report.best_f1 == pytest.approx(np.mean([c["best_f1"] for c in report.categories[:2]]))
    text = report.format()
    assert "  category  labelled  harmful   best F1   thr      AP" in text
    assert "mean over 2 of 3 categories" in text and "n/a" in text
    # The run names them (a head knows positions only): the table then says which is which.
    report.category_names = ["violence", "gore", "self_harm"]
    lines = report.format().splitlines()
    assert lines[1].split()[:2] == ["category", "labelled"]
    assert [line.split()[0] for line in lines[2:5]] == ["violence", "gore", "self_harm"]
    assert lines[4].split()[1:3] == ["12", "0"] and "n/a" in lines[4]


# --- errors -----------------------------------------------------------------------------------
def test_label_errors():
    data = categories(20, 3, seed=9, hidden=0.0)
    head = make_head("logreg")
    y = data.labels.copy()
    y[0, 1] = 2
    with pytest.raises(UsageError, match=r"X labels must be 0 \(safe\) or 1 \(harmful\), or NaN"):
        head.fit(data, y)
    with pytest.raises(UsageError, match=r"X labels must be 0 \(safe\) or 1 \(harmful\), got <U1"):
        head.fit(data, np.array(["a"] * 20))
    y = data.labels.copy()
    y[:, 1] = np.where(np.arange(20) < 12, 0.0, np.nan)
    with pytest.raises(
        DataError,
        match=r"X needs both classes in every category; category 1 \(column 1 of the labels\) "
        r"has 0 harmful and 12 safe among its 12 labelled videos",
    ):
        head.fit(data, y)
    with pytest.raises(DataError, match=r"X needs both classes; all 12 labelled videos are "):
        head.fit(data, y[:, 1])
    with pytest.raises(DataError, match=r"X needs both classes; none of its 20 videos is label"):
        head.fit(data, np.full(20, np.nan))
    for shape in ((20, 0), (20, 3, 1), (19, 3)):
        with pytest.raises(UsageError, match=r"X holds 20 videos but the labels have shape"):
            head.fit(data, np.zeros(shape))
    one_class = np.zeros((20, 3))
    with pytest.raises(DataError, match=r"eval_set needs both classes in at least one category"):
        head.fit(data, eval_set=(data, one_class))
    with pytest.raises(UsageError, match=r"eval_set has labels for 2 categories, X for 3"):
        head.fit(data, eval_set=(data, data.labels[:, :2]))


def test_check_targets_gives_n_by_k_floats():
    got = check_targets(np.array([0, 1, 1]), "y")
    assert got.shape == (3, 1) and got.dtype == np.float64
    y = np.array([[0, np.nan], [1, 0], [0, 1]])
    np.testing.assert_array_equal(check_targets(y, "y"), y)
    check_targets(np.array([[0, 0], [1, 0]]), "y", training=False)  # one class in category 1
