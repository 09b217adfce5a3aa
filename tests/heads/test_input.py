"""Heads called from Python refuse bad input with a clear error: a NaN or infinite feature, no
videos, no features; and harmcache's errors are the `ValueError`s scikit-learn code catches."""

from __future__ import annotations

import numpy as np
import pytest

from harmcache.errors import DataError, UsageError
from harmcache.heads.base import make_head
from harmcache.heads.data import Modality, PooledData, SequenceData, modality_moments

TINY = {
    "transformer": {"epochs": 1, "d_model": 8, "dim_feedforward": 16},
    "mil": {"epochs": 1, "d_model": 8},
    "lightgbm": {"n_estimators": 5},
    "logreg": {},
}
HEADS = list(TINY)


def quiet(report):
    pass


def videos(n: int = 16, seed: int = 0) -> SequenceData:
    """n labelled videos of 3-6 s: CLIP frames every 0.5 s, SlowFast windows every 2 s."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    duration = rng.uniform(3, 6, n)
    modalities = {}
    for name, dim, step in (("clip", 6, 0.5), ("slowfast", 4, 2.0)):
        stamps = [np.arange(step / 2, d, step) for d in duration]
        length = max(map(len, stamps))
        values = np.zeros((n, length, dim), dtype=np.float32)
        mask = np.zeros((n, length), dtype=bool)
        stamp = np.zeros((n, length))
        for i, t in enumerate(stamps):
            values[i, : len(t)] = rng.normal(size=(len(t), dim)) + labels[i]
            mask[i, : len(t)], stamp[i, : len(t)] = True, t
        position = np.where(mask, stamp / duration[:, None], 0).astype(np.float32)
        modalities[name] = Modality(values, mask, stamp, position)
    return SequenceData([f"v{i}" for i in range(n)], modalities, labels, duration)


def spoiled(value: float, video: int = 3) -> SequenceData:
    data = videos()
    data.modalities["clip"].values[video, 1, 2] = value
    return data


@pytest.mark.parametrize("name", HEADS)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_non_finite_feature_is_refused_by_fit(name, value):
    # The neural heads used to train on it and score every video NaN, with no error.
    with pytest.raises(
        DataError,
        match=r"X holds non-finite feature values \(NaN or inf\) in clip for 1 video\(s\) "
        r"\(first: v3\); features must be finite numbers",
    ):
        make_head(name, **TINY[name]).fit(spoiled(value), on_epoch=quiet)


@pytest.mark.parametrize("name", HEADS)
def test_a_non_finite_feature_is_refused_in_eval_set_and_predict_proba(name):
    head = make_head(name, **TINY[name])
    with pytest.raises(DataError, match=r"eval_set holds non-finite feature values"):
        head.fit(videos(), eval_set=spoiled(np.nan), on_epoch=quiet)
    head.fit(videos(), on_epoch=quiet)
    with pytest.raises(DataError, match=r"X holds non-finite feature values .* \(first: v3\)"):
        head.predict_proba(spoiled(np.inf))
    with pytest.raises(DataError, match=r"X holds non-finite feature values"):
        head.predict(spoiled(np.nan))


@pytest.mark.parametrize("name", HEADS)
def test_no_videos_is_a_clear_error_not_an_index_error(name):
    empty = videos()[np.arange(0)]
    head = make_head(name, **TINY[name])
    for y in (None, np.zeros(0, dtype=int)):
        with pytest.raises(DataError, match=r"X holds no videos; a head needs some of each"):
            head.fit(empty, y, on_epoch=quiet)
    with pytest.raises(DataError, match=r"eval_set holds no videos"):
        head.fit(videos(), eval_set=empty, on_epoch=quiet)


@pytest.mark.parametrize("name", HEADS)
def test_scoring_no_videos_gives_no_scores(name):
    # The MIL head used to raise IndexError here.
    head = make_head(name, **TINY[name]).fit(videos(), on_epoch=quiet)
    empty = videos()[np.arange(0)]
    assert head.predict_proba(empty).shape == (0, 2)
    assert head.predict(empty).shape == (0,)


@pytest.mark.parametrize("name", HEADS)
def test_no_features_is_refused(name):
    data = videos()
    n = len(data)
    zero = Modality(np.zeros((n, 1, 0), np.float32), np.ones((n, 1), bool), *np.zeros((2, n, 1)))
    blind = SequenceData(data.video_ids, {"clip": zero}, data.labels, data.duration)
    with pytest.raises(DataError, match=r"X has 0 features \(modality widths \{'clip': 0\}\)"):
        make_head(name, **TINY[name]).fit(blind, on_epoch=quiet)


def test_pooled_data_may_miss_values_but_not_hold_infinities():
    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    x[0, 1] = np.nan  # a video with no rows in a modality: LightGBM treats it as missing
    pooled = PooledData([f"v{i}" for i in range(8)], x, ("mean",), {"clip": 3}, np.arange(8) % 2)
    make_head("logreg").fit(pooled, on_epoch=quiet)
    pooled.values[5, 2] = np.inf
    with pytest.raises(DataError, match=r"X holds infinite pooled values for 1 video\(s\) "):
        make_head("logreg").fit(pooled, on_epoch=quiet)


class Stream:
    """The part of a StreamingLoader that `fit_stream` reads, over data in memory."""

    def __init__(self, data: SequenceData):
        self.data, self.dims, self.labels = data, data.dims, data.labels

    def moments(self):
        return {name: modality_moments(m) for name, m in self.data.modalities.items()}

    def epoch(self, epoch: int):
        yield self.data


def test_fit_stream_refuses_non_finite_features():
    head = make_head("transformer", **TINY["transformer"])
    assert np.isfinite(head.fit_stream(Stream(videos())).predict_proba(videos())).all()
    with pytest.raises(DataError, match=r"the training videos hold non-finite feature values"):
        head.fit_stream(Stream(spoiled(np.nan)))
    with pytest.raises(DataError, match=r"eval_set holds non-finite feature values"):
        head.fit_stream(Stream(videos()), eval_set=spoiled(np.inf))


def test_harmcache_errors_are_value_errors():
    # scikit-learn (and its check_estimator) catches ValueError for bad settings and data.
    with pytest.raises(ValueError, match=r"d_model, layers, batch_size and epochs must be"):
        make_head("transformer", epochs=0)
    try:
        make_head("logreg").fit(spoiled(np.nan), on_epoch=quiet)
    except ValueError as error:
        assert isinstance(error, DataError)
    else:
        raise AssertionError("a NaN feature was accepted")
    assert issubclass(UsageError, ValueError) and issubclass(DataError, ValueError)
