"""Heads are scikit-learn estimators: `clone`, `get_params`/`set_params`, `classes_`,
`NotFittedError`, and `cross_val_score` over a `SequenceData` read from a real HDF5 cache;
`SequenceData` indexes like an array so cross-validation can split it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score
from sklearn.utils import _safe_indexing

from harmcache.errors import DataError, UsageError
from harmcache.heads.base import make_head
from harmcache.heads.data import SequenceData
from harmcache.train.features import load_sequences
from tests.synthetic_cache import build

HEADS = ["transformer", "lightgbm", "logreg"]
SMALL = {
    "transformer": {"epochs": 3},
    "lightgbm": {"n_estimators": 40},
    "logreg": {},
}


def quiet(report):
    pass


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """48 videos read back from HDF5 shards written in the cache's own format."""
    syn = build(tmp_path_factory.mktemp("cv"), 48, signal=3.0, variable_length=True)
    return load_sequences(syn.cache, syn.families, syn.ids, np.array(syn.labels))


@pytest.mark.parametrize("name", HEADS)
def test_clone_and_cross_val_score_on_a_real_cache(name, data):
    head = make_head(name, **SMALL[name])
    assert is_classifier(head)
    twin = clone(head)
    assert twin is not head and twin.get_params() == head.get_params()
    auc = cross_val_score(twin, data, data.labels, cv=3, scoring="roc_auc")
    assert auc.shape == (3,) and auc.min() >= 0.9
    f1 = cross_val_score(twin, data, data.labels, cv=2, scoring="f1")
    assert f1.shape == (2,) and np.isfinite(f1).all()
    assert not hasattr(twin, "classes_")  # cross_val_score fitted clones, not `twin`


@pytest.mark.parametrize("name", HEADS)
def test_not_fitted_before_fit(name, data):
    head = make_head(name)
    for method in (head.predict_proba, head.predict):
        with pytest.raises(NotFittedError, match=r"is not fitted yet"):
            method(data)
    with pytest.raises(NotFittedError, match=r"is not fitted yet"):
        head.save("never-written")


@pytest.mark.parametrize("name", HEADS)
def test_get_params_set_params(name):
    head = make_head(name, seed=3)
    params = head.get_params()
    assert params["seed"] == 3
    assert head.set_params(seed=4) is head and head.get_params()["seed"] == 4
    assert type(head)(**params).get_params() == params
    with pytest.raises(ValueError, match=r"Invalid parameter 'wings'"):
        head.set_params(wings=2)


@pytest.mark.parametrize("name", HEADS)
def test_classes_proba_and_predict_at_the_threshold(name, data):
    head = make_head(name, **SMALL[name]).fit(data, on_epoch=quiet)
    np.testing.assert_array_equal(head.classes_, [0, 1])
    proba = head.predict_proba(data)
    assert proba.shape == (len(data), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(head.predict(data), (proba[:, 1] >= 0.5).astype(int))
    head.threshold_ = 0.9
    np.testing.assert_array_equal(head.predict(data), (proba[:, 1] >= 0.9).astype(int))
    assert not hasattr(head.fit(data, on_epoch=quiet), "threshold_")  # a refit starts afresh


def test_without_eval_set_every_epoch_and_round_is_trained(data):
    reports = []
    head = make_head("transformer", **SMALL["transformer"], patience=1)
    head.fit(data, on_epoch=reports.append)
    assert [r.epoch for r in reports] == [1, 2, 3] and head.best_epoch_ == 3
    assert reports[0].val_loss is None and reports[0].rows == []
    assert reports[0].format().startswith("epoch 1/3  train loss")
    gbm = make_head("lightgbm", n_estimators=25, early_stopping_rounds=1).fit(data, on_epoch=quiet)
    assert gbm.best_iterations_ == [25]


def test_eval_set_as_a_pair_or_labelled_data(data):
    train, val = data[np.arange(0, 48, 2)], data[np.arange(1, 48, 2)]
    a = make_head("logreg").fit(train, eval_set=val, on_epoch=quiet)
    b = make_head("logreg").fit(train, train.labels, eval_set=(val, val.labels), on_epoch=quiet)
    np.testing.assert_array_equal(a.predict_proba(val), b.predict_proba(val))


def test_fit_and_predict_errors(data):
    head = make_head("logreg")
    unlabelled = SequenceData(data.video_ids, data.modalities, None, data.duration)
    y = data.labels
    with pytest.raises(UsageError, match=r"X must be a SequenceData or a PooledData, got ndarray"):
        head.fit(np.zeros((48, 3)), y)
    with pytest.raises(UsageError, match=r"X has no labels: pass y"):
        head.fit(unlabelled)
    with pytest.raises(UsageError, match=r"X holds 48 videos but the labels have shape \(3,\)"):
        head.fit(data, y[:3])
    with pytest.raises(UsageError, match=r"X labels must be 0 \(safe\) or 1 \(harmful\)"):
        head.fit(data, y * 2)
    with pytest.raises(DataError, match=r"X needs both classes; all 48 videos are labelled 0"):
        head.fit(data, np.zeros(48, dtype=int))
    with pytest.raises(UsageError, match=r"eval_set must be a labelled SequenceData or an"):
        head.fit(data, eval_set=[data])
    with pytest.raises(UsageError, match=r"eval_set has no labels"):
        head.fit(data, eval_set=unlabelled)
    head.fit(data, on_epoch=quiet)
    with pytest.raises(UsageError, match=r"X must be a SequenceData or a PooledData, got list"):
        head.predict_proba([1, 2])


@pytest.mark.parametrize(
    "name, settings, message",
    [
        ("transformer", {"epochs": 0}, r"d_model, layers, batch_size and epochs must be at least"),
        ("transformer", {"loss": "hinge"}, r"loss must be bce or focal, got 'hinge'"),
        ("transformer", {"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
        ("transformer", {"max_rows": 0}, r"max_rows must be at least 1, got 0"),
        ("lightgbm", {"stats": "mean,median"}, r"stats must be among mean,std,max,min; got median"),
        ("lightgbm", {"n_estimators": 0}, r"n_estimators and num_threads must be at least 1"),
        ("logreg", {"C": 0.0}, r"C must be positive, got 0.0"),
    ],
)
def test_bad_settings_fail_in_make_head_and_in_fit(name, settings, message, data):
    with pytest.raises(UsageError, match=message):
        make_head(name, **settings)
    # Constructed directly (as clone does), the head stores the value and refuses it in fit.
    head = type(make_head(name))(**settings)
    with pytest.raises(UsageError, match=message):
        head.fit(data)


def test_sequence_data_indexes_like_an_array(data):
    idx = np.array([5, 0, 7])
    for part in (data[idx], data[idx, ...], _safe_indexing(data, idx), data.subset(idx)):
        assert part.video_ids == [data.video_ids[i] for i in idx]
        np.testing.assert_array_equal(part.labels, data.labels[idx])
        assert part.dims == data.dims
    mask = np.zeros(len(data), dtype=bool)
    mask[[1, 3]] = True
    assert data[mask].video_ids == [data.video_ids[1], data.video_ids[3]]
    assert data[2:5].video_ids == data.video_ids[2:5]
    assert len(data[[]]) == 0 and data.shape == (48,) and len(data) == 48
    with pytest.raises(IndexError, match=r"a boolean mask of 3 for 48 videos"):
        data[np.array([True, False, True])]
    with pytest.raises(TypeError, match=r"index a SequenceData with an integer array"):
        data[np.array([0.5])]
