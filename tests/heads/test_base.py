"""Every head learns a planted signal from a synthetic cache, survives a save/load round trip,
and the Transformer copes with variable lengths and missing modalities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harmcache.errors import UsageError
from harmcache.heads.base import load_head, make_head, parse_params
from harmcache.heads.data import SequenceData
from harmcache.heads.transformer import SequenceClassifier, find_nhead
from harmcache.metrics import best_f1
from harmcache.train.features import load_sequences
from harmcache.train.labels import LabeledVideo
from harmcache.train.split import stratified_split
from tests.synthetic_cache import build

FAST = {
    "transformer": {"epochs": 6, "patience": 3},
    "lightgbm": {},
    "logreg": {},
}


def quiet(report):
    pass


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    syn = build(tmp_path_factory.mktemp("planted"), 120, signal=3.0, variable_length=True)
    y = np.array(syn.labels)
    split = stratified_split(
        [LabeledVideo(v, int(label), [p]) for v, label, p in zip(syn.ids, y, syn.paths)], seed=0
    )
    data = load_sequences(syn.cache, syn.families, syn.ids, y)
    train = data.subset([i for i, v in enumerate(syn.ids) if split[v] == "train"])
    val = data.subset([i for i, v in enumerate(syn.ids) if split[v] == "val"])
    return train, val


@pytest.mark.parametrize(
    "d_model, max_heads, expected",
    [(128, 10, 8), (100, 10, 10), (96, 10, 8), (7, 10, 7), (930, 10, 10), (13, 10, 1), (64, 4, 4)],
)
def test_find_nhead(d_model, max_heads, expected):
    assert find_nhead(d_model, max_heads) == expected
    assert d_model % find_nhead(d_model, max_heads) == 0


@pytest.mark.parametrize("name", ["transformer", "lightgbm", "logreg"])
def test_head_learns_planted_signal_and_round_trips(name, planted, tmp_path):
    train, val = planted
    head = make_head(name, **FAST[name]).fit(train, eval_set=val, on_epoch=quiet)
    proba = head.predict_proba(val)
    assert proba.shape == (len(val), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    scores = proba[:, 1]
    assert np.all((scores >= 0) & (scores <= 1))
    f1, _ = best_f1(val.labels, scores)
    assert f1 >= 0.95
    head.save(tmp_path / name)
    again = load_head(tmp_path / name)
    np.testing.assert_allclose(again.predict_proba(val)[:, 1], scores, rtol=0, atol=1e-7)


def reordered(data: SequenceData, names: list[str]) -> SequenceData:
    return SequenceData(
        data.video_ids, {n: data.modalities[n] for n in names}, data.labels, data.duration
    )


@pytest.mark.parametrize("name", ["transformer", "lightgbm", "logreg"])
def test_modality_order_does_not_change_scores_after_a_round_trip(name, tmp_path):
    # Two modalities of the same width, fitted in non-sorted order: state must follow the names.
    syn = build(tmp_path, 40, signal=3.0, dims={"yolo": 8, "clip": 8, "slowfast": 12})
    data = load_sequences(syn.cache, syn.families, syn.ids, np.array(syn.labels))
    order = ["yolo", "slowfast", "clip"]
    train, val = reordered(data[np.arange(0, 40, 2)], order), data[np.arange(1, 40, 2)]
    head = make_head(name, **FAST[name]).fit(train, eval_set=reordered(val, order), on_epoch=quiet)
    scores = head.predict_proba(reordered(val, order))
    head.save(tmp_path / "head")
    again = load_head(tmp_path / "head")
    for names in (order, sorted(order), ["clip", "yolo", "slowfast"]):
        np.testing.assert_allclose(
            again.predict_proba(reordered(val, names)), scores, rtol=0, atol=1e-6
        )


def test_a_transformer_saved_with_index_keyed_weights_is_refused(planted, tmp_path):
    train, val = planted
    make_head("transformer", epochs=1).fit(train, on_epoch=quiet).save(tmp_path)
    torch.save({"mean0": torch.zeros(16)}, tmp_path / "model.pt")
    with pytest.raises(UsageError, match=r"saved before its per-modality weights were keyed"):
        load_head(tmp_path)


def test_transformer_is_deterministic_with_a_seed(planted):
    train, val = planted
    a = make_head("transformer", epochs=2, seed=3).fit(train, eval_set=val, on_epoch=quiet)
    b = make_head("transformer", epochs=2, seed=3).fit(train, eval_set=val, on_epoch=quiet)
    np.testing.assert_array_equal(a.predict_proba(val), b.predict_proba(val))


def test_transformer_reports_each_epoch_and_restores_the_best(planted):
    train, val = planted
    reports = []
    head = make_head("transformer", epochs=3, monitor="loss")
    head.fit(train, eval_set=val, on_epoch=reports.append)
    assert [r.epoch for r in reports] == [1, 2, 3]
    table = [row["threshold"] for row in reports[0].rows]
    assert table == [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]
    assert "<- best" in reports[0].format()
    best = min(reports, key=lambda r: r.val_loss)
    assert head.best_epoch_ == best.epoch


def test_fully_masked_modality_gives_finite_scores(planted):
    train, val = planted
    head = make_head("transformer", epochs=1).fit(train, eval_set=val, on_epoch=quiet)
    data = val.subset(np.arange(4))
    for m in data.modalities.values():
        m.mask[0] = False  # video 0: no rows at all, in any modality
    data.modalities["slowfast"].mask[1] = False  # video 1: no SlowFast windows
    scores = head.predict_proba(data)
    assert np.isfinite(scores).all()
    # Segment windows with no rows at all must not produce NaN either.
    assert np.isfinite(head.predict_proba(val.window(1e6, 2e6))).all()


def test_model_logits_are_finite_when_everything_is_padding():
    model = SequenceClassifier({"a": 3, "b": 5}, d_model=12).eval()
    values = {"a": torch.zeros(2, 4, 3), "b": torch.zeros(2, 0, 5)}
    masks = {"a": torch.zeros(2, 4, dtype=torch.bool), "b": torch.zeros(2, 0, dtype=torch.bool)}
    positions = {"a": torch.zeros(2, 4), "b": torch.zeros(2, 0)}
    assert model.nhead == 6
    assert torch.isfinite(model(values, masks, positions)).all()


@pytest.mark.parametrize("name", ["lightgbm", "logreg"])
def test_pooled_heads_handle_empty_modalities(name, planted):
    train, val = planted
    head = make_head(name).fit(train, eval_set=val, on_epoch=quiet)
    data = val.subset(np.arange(3))
    data.modalities["slowfast"].mask[:] = False
    assert np.isfinite(head.predict_proba(data)).all()


def test_focal_loss_trains(planted):
    train, val = planted
    head = make_head("transformer", epochs=4, loss="focal").fit(train, eval_set=val, on_epoch=quiet)
    assert best_f1(val.labels, head.predict_proba(val)[:, 1])[0] >= 0.9


def test_wrong_features_at_predict_time(planted):
    train, val = planted
    head = make_head("logreg").fit(train, eval_set=val, on_epoch=quiet)
    fewer = SequenceData(val.video_ids, {"clip": val.modalities["clip"]}, None, val.duration)
    with pytest.raises(UsageError, match=r"the logreg head was fitted on features"):
        head.predict_proba(fewer)


def test_settings():
    assert parse_params("transformer", ["lr=1e-4", "max_rows=none", "loss=focal"]) == {
        "lr": 1e-4,
        "max_rows": None,
        "loss": "focal",
    }
    assert parse_params("lightgbm", ["num_leaves=7"]) == {"num_leaves": 7}
    with pytest.raises(UsageError, match=r"--param 'nope=1': expected KEY=VALUE"):
        parse_params("logreg", ["nope=1"])
    with pytest.raises(UsageError, match=r"unknown setting\(s\) wings"):
        make_head("logreg", wings=2)
    with pytest.raises(UsageError, match=r"unknown head 'forest'"):
        make_head("forest")
    with pytest.raises(UsageError, match=r"monitor must be f1, ap or loss"):
        make_head("transformer", monitor="accuracy")
