"""The MIL head learns where the harm is from video labels only: on planted long videos it
classifies held-out videos and scores their harmful seconds, better than mean pooling; top-k
pooling follows k = ⌊T/16⌋ + 1; and it is a scikit-learn estimator like the other heads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score

from harmcache.errors import UsageError
from harmcache.heads.base import load_head, make_head, parse_params
from harmcache.heads.data import Modality, SequenceData
from harmcache.heads.mil import MILHead, pool_logits, topk_count
from harmcache.metrics import best_f1, segment_metrics, summary

DIMS = {"clip": 16, "slowfast": 24}


def quiet(report):
    pass


def long_videos(
    n: int,
    *,
    seed: int = 0,
    signal: float = 2.0,
    fps: float = 2.0,
    window_every: float = 1.5,
) -> tuple[SequenceData, list[list[tuple[float, float]]]]:
    """n videos of 30-60 s, half harmful: one 4-10 s event in each harmful video, where every
    row (CLIP frames at `fps`, SlowFast windows every `window_every` s) is shifted by `signal`
    along a fixed direction. Everywhere else every video is the same N(0, 1) noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    rng.shuffle(labels)
    duration = rng.uniform(30, 60, n)
    events = []
    for label, d in zip(labels, duration):
        length = rng.uniform(4, 10)
        start = rng.uniform(0, d - length)
        events.append([(start, start + length)] if label else [])
    modalities = {}
    for name, dim in DIMS.items():
        step = window_every if name == "slowfast" else 1 / fps
        direction = rng.normal(size=dim)
        direction *= signal / np.linalg.norm(direction)
        stamps = [np.arange(step / 2, d, step) for d in duration]
        length = max(map(len, stamps))
        values = np.zeros((n, length, dim), dtype=np.float32)
        mask = np.zeros((n, length), dtype=bool)
        stamp = np.zeros((n, length))
        for i, t in enumerate(stamps):
            rows = rng.normal(size=(len(t), dim))
            for s, e in events[i]:
                rows[(t >= s) & (t < e)] += direction
            values[i, : len(t)], mask[i, : len(t)], stamp[i, : len(t)] = rows, True, t
        position = np.where(mask, stamp / duration[:, None], 0).astype(np.float32)
        modalities[name] = Modality(values, mask, stamp, position)
    ids = [f"video{i:03d}" for i in range(n)]
    return SequenceData(ids, modalities, labels.astype(np.int64), duration), events


@pytest.fixture(scope="module")
def planted():
    data, events = long_videos(160, seed=0)
    train, val, test = data[np.arange(80)], data[np.arange(80, 100)], data[np.arange(100, 160)]
    by_video = dict(zip(data.video_ids, events))
    return train, val, test, by_video


@pytest.fixture(scope="module")
def fitted(planted):
    train, val, _, _ = planted
    return make_head("mil").fit(train, eval_set=val, on_epoch=quiet)


def evaluate(head, val, test, events) -> tuple[float, dict]:
    """Video F1 on `test` at the best-F1 threshold on `val`, and the per-second metrics."""
    threshold = best_f1(val.labels, head.predict_proba(val)[:, 1])[1]
    f1 = summary(test.labels, head.predict_proba(test)[:, 1], threshold)["f1"]
    timelines = dict(zip(test.video_ids, head.timelines(test)))
    durations = dict(zip(test.video_ids, test.duration))
    return f1, segment_metrics(events, timelines, durations)


def test_mil_finds_video_and_seconds_from_video_labels_better_than_mean_pooling(planted, fitted):
    train, val, test, events = planted
    f1, seconds = evaluate(fitted, val, test, events)
    mean_head = make_head("mil", pooling="mean").fit(train, eval_set=val, on_epoch=quiet)
    mean_f1, mean_seconds = evaluate(mean_head, val, test, events)
    print(
        f"\nMIL top-k: video F1 {f1:.3f}, per-second AP {seconds['segment_ap']:.3f}, "
        f"AUROC {seconds['segment_auroc']:.3f} ({seconds['n_seconds']} seconds, "
        f"{seconds['n_positive_seconds']} harmful)"
        f"\nMIL mean pooling: video F1 {mean_f1:.3f}, per-second AP "
        f"{mean_seconds['segment_ap']:.3f}, AUROC {mean_seconds['segment_auroc']:.3f}"
    )
    assert f1 >= 0.95
    assert seconds["segment_ap"] >= 0.8
    # Mean pooling dilutes a short event over the whole video. Over nine data seeds: top-k
    # video F1 0.95-1.0 and per-second AP 0.96-0.98; mean pooling 0.71-0.86 and 0.86-0.95,
    # never ahead on either (here, seed 0: 1.0/0.98 against 0.75/0.91).
    assert mean_f1 < f1
    assert mean_seconds["segment_ap"] < seconds["segment_ap"]
    assert seconds["n_positive_seconds"] > 0


@pytest.mark.parametrize(
    "t, k", [(0, 1), (1, 1), (15, 1), (16, 2), (31, 2), (32, 3), (47, 3), (60, 4), (3600, 226)]
)
def test_topk_count_is_t_over_16_plus_one(t, k):
    valid = torch.zeros(1, max(t, 1), dtype=torch.bool)
    valid[0, :t] = True
    assert int(topk_count(valid, 16)[0]) == k


@pytest.mark.parametrize("pooling", ["topk", "mean", "max"])
def test_pooling_against_brute_force(pooling):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 70, generator=gen)
    lengths = [1, 15, 16, 33, 50, 70]
    valid = torch.arange(70)[None, :] < torch.tensor(lengths)[:, None]
    valid[4, 10] = False  # a gap inside a video
    pooled = pool_logits(logits, valid, pooling, 16)
    for i in range(6):
        row = logits[i][valid[i]].sort(descending=True).values
        k = {"topk": len(row) // 16 + 1, "mean": len(row), "max": 1}[pooling]
        assert float(pooled[i]) == pytest.approx(float(row[:k].mean()), abs=1e-6)


def test_video_score_is_the_topk_mean_of_its_snippet_logits(planted, fitted):
    _, _, test, _ = planted
    videos = test[np.arange(6)]
    scores = fitted.predict_proba(videos)[:, 1]
    grid = fitted.grid(videos)
    for score, snippets, timeline, covered, inside in zip(
        scores, fitted.snippet_scores(videos), fitted.timelines(videos), grid.mask, grid.inside
    ):
        logits = np.sort(np.log(snippets) - np.log1p(-snippets))[::-1]
        k = len(logits) // 16 + 1
        assert score == pytest.approx(1 / (1 + np.exp(-logits[:k].mean())), abs=1e-5)
        # Dense features cover every snippet but perhaps a short last one.
        assert len(snippets) == covered.sum() >= inside.sum() - 1
        np.testing.assert_array_equal(timeline.score, snippets)
        assert timeline.start[0] == 0 and np.all(np.diff(timeline.start) == 1.0)
        assert np.all((snippets >= 0) & (snippets <= 1))


def test_clone_and_not_fitted(planted, fitted):
    fresh = clone(fitted)
    assert fresh.get_params() == fitted.get_params()
    assert not hasattr(fresh, "model_")
    _, _, test, _ = planted
    for method in (fresh.predict_proba, fresh.predict, fresh.snippet_scores, fresh.timelines):
        with pytest.raises(NotFittedError):
            method(test)
    assert isinstance(make_head("mil"), MILHead)
    np.testing.assert_array_equal(fitted.classes_, [0, 1])


def test_cross_val_score_splits_long_videos():
    data, _ = long_videos(24, seed=1)
    scores = cross_val_score(make_head("mil", epochs=2), data, data.labels, cv=2, scoring="roc_auc")
    assert scores.shape == (2,) and np.isfinite(scores).all()


def test_save_load_gives_identical_scores(planted, fitted, tmp_path):
    _, _, test, _ = planted
    fitted.save(tmp_path)
    again = load_head(tmp_path)
    assert isinstance(again, MILHead) and again.get_params() == fitted.get_params()
    np.testing.assert_array_equal(again.predict_proba(test), fitted.predict_proba(test))
    for a, b in zip(again.snippet_scores(test), fitted.snippet_scores(test)):
        np.testing.assert_array_equal(a, b)
    assert again.best_epoch_ == fitted.best_epoch_


def reordered(data: SequenceData, names: list[str]) -> SequenceData:
    return SequenceData(
        data.video_ids, {n: data.modalities[n] for n in names}, data.labels, data.duration
    )


def test_deterministic_and_modality_order_free(planted, tmp_path):
    train, val, test, _ = planted
    small = {"epochs": 2, "seed": 3}
    a = make_head("mil", **small).fit(reordered(train, ["slowfast", "clip"]), on_epoch=quiet)
    b = make_head("mil", **small).fit(train, on_epoch=quiet)
    np.testing.assert_array_equal(a.predict_proba(test), b.predict_proba(test))
    a.save(tmp_path)
    again = load_head(tmp_path)
    for names in (["clip", "slowfast"], ["slowfast", "clip"]):
        np.testing.assert_array_equal(
            again.predict_proba(reordered(test, names)), a.predict_proba(test)
        )


def test_scores_do_not_depend_on_the_batch_or_on_missing_rows(planted, fitted):
    _, _, test, _ = planted
    together = fitted.predict_proba(test)[:, 1]
    alone = np.array([fitted.predict_proba(test[[i]])[0, 1] for i in range(4)])
    np.testing.assert_allclose(alone, together[:4], rtol=0, atol=1e-6)
    data = test[np.arange(3)]
    for m in data.modalities.values():
        m.mask[0] = False  # video 0: no rows in any modality
    data.modalities["slowfast"].mask[1] = False  # video 1: no SlowFast windows
    assert np.isfinite(fitted.predict_proba(data)).all()
    assert len(fitted.snippet_scores(data)[0]) == 0
    assert len(fitted.snippet_scores(data)[1]) == fitted.grid(data).n_snippets[1]


def test_fitted_features_are_checked(planted, fitted):
    _, _, test, _ = planted
    fewer = SequenceData(test.video_ids, {"clip": test.modalities["clip"]}, None, test.duration)
    with pytest.raises(UsageError, match=r"the mil head was fitted on features"):
        fitted.snippet_scores(fewer)


def test_settings():
    assert parse_params("mil", ["pooling=mean", "window_reach=none", "snippet_seconds=0.5"]) == {
        "pooling": "mean",
        "window_reach": None,
        "snippet_seconds": 0.5,
    }


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"pooling": "attention"}, r"pooling must be topk, mean or max, got 'attention'"),
        ({"kernel_size": 4}, r"kernel_size must be odd and positive, got 4"),
        ({"snippet_seconds": 0}, r"snippet_seconds must be positive, got 0"),
        ({"monitor": "accuracy"}, r"monitor must be f1, ap or loss, got 'accuracy'"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
        ({"topk_divisor": 0}, r"d_model, layers, batch_size, epochs and topk_divisor must be"),
    ],
)
def test_bad_settings_are_refused(settings, message):
    with pytest.raises(UsageError, match=message):
        make_head("mil", **settings)
    data, _ = long_videos(4)
    with pytest.raises(UsageError, match=message):
        MILHead(**settings).fit(data, on_epoch=quiet)
