"""The streaming loader: every video once per epoch, seeded order, bounded buffer, streaming
statistics equal to the in-memory ones, and a Transformer trained through it."""

from __future__ import annotations

import numpy as np
import pytest

from harmcache.errors import UsageError
from harmcache.heads.data import Moments, pooled_statistics
from harmcache.heads.transformer import TransformerHead
from harmcache.store.reader import read_videos
from harmcache.train import loader as loader_mod
from harmcache.train.features import load_sequences, scan_cache, scan_data
from harmcache.train.loader import StreamingLoader, pool_cache, pooled_from_cache
from tests import synthetic_cache
from tests.store.test_shard import write_v1_shard


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synthetic_cache.build(
        tmp_path_factory.mktemp("loader"), n=90, variable_length=True, empty={"yolo": [3, 40]},
        shard_size=20,
    )  # fmt: skip


def loader(synth, **kw) -> StreamingLoader:
    settings = {"batch_size": 4, "buffer_videos": 24, "slice_videos": 10, "seed": 0, **kw}
    return StreamingLoader(
        synth.cache, synth.families, synth.ids, np.array(synth.labels), **settings
    )


def order(stream: StreamingLoader, epoch: int = 0) -> list[str]:
    return [v for batch in stream.epoch(epoch) for v in batch.video_ids]


# The second setting would keep more blocks alive than allowed (so stragglers are copied out)
# and recycles freed blocks' memory into later reads: rows must stay each video's own.
@pytest.mark.parametrize("settings", [{}, {"buffer_videos": 20, "slice_videos": 10}])
@pytest.mark.parametrize("epoch", [0, 1])
def test_every_video_exactly_once_per_epoch_with_its_own_rows_and_label(
    synth, settings, epoch, monkeypatch
):
    events = {"detached": 0, "recycled": 0}
    detach, alloc = loader_mod._Video.detach, loader_mod._Blocks.alloc

    def counted_detach(video):
        events["detached"] += 1
        detach(video)

    def counted_alloc(blocks, shape, dtype):
        free = len(blocks._free)
        out = alloc(blocks, shape, dtype)
        events["recycled"] += len(blocks._free) < free
        return out

    monkeypatch.setattr(loader_mod._Video, "detach", counted_detach)
    monkeypatch.setattr(loader_mod._Blocks, "alloc", counted_alloc)
    stream = loader(synth, **settings)
    if epoch:
        list(stream.epoch(0))
    reference = load_sequences(synth.cache, synth.families, synth.ids, np.array(synth.labels))
    where = {v: i for i, v in enumerate(synth.ids)}
    seen = []
    for batch in stream.epoch(epoch):
        assert len(batch) <= 4 and batch.labels is not None
        for j, vid in enumerate(batch.video_ids):
            i = where[vid]
            assert batch.labels[j] == reference.labels[i]
            assert batch.duration[j] == reference.duration[i]
            for name, m in batch.modalities.items():
                ref = reference.modalities[name]
                assert m.values.dtype == np.float32
                rows = m.values[j][m.mask[j]]
                assert np.array_equal(rows, ref.values[i][ref.mask[i]])
                assert np.array_equal(m.position[j][m.mask[j]], ref.position[i][ref.mask[i]])
        seen += batch.video_ids
    assert sorted(seen) == sorted(synth.ids) and len(seen) == len(set(seen))
    if settings and epoch:  # counted over both epochs
        assert events["detached"] > 0 and events["recycled"] > 0


def test_order_is_fixed_by_seed_and_epoch(synth):
    first = order(loader(synth), 0)
    assert order(loader(synth), 0) == first
    assert order(loader(synth), 1) != first
    assert order(loader(synth, seed=1), 0) != first
    # Videos from different shards meet in one batch: the shuffle crosses shards.
    shard_of = synth.cache.index.shards_of(synth.families["clip"].name, synth.ids)
    batches = list(loader(synth).epoch(0))
    assert any(len({shard_of[v] for v in b.video_ids}) > 1 for b in batches)


@pytest.mark.parametrize("buffer, slice_", [(8, 10), (24, 10), (5, 5), (200, 50)])
def test_the_buffer_never_holds_more_videos_than_configured(synth, buffer, slice_):
    stream = loader(synth, buffer_videos=buffer, slice_videos=slice_)
    batches = list(stream.epoch(0))
    assert 0 < stream.peak_buffer_ <= buffer
    assert 0 < stream.peak_blocks_ <= stream.max_blocks
    assert max(len(b) for b in batches) <= 4
    assert sum(len(b) for b in batches) == len(synth.ids)


def test_bad_settings_are_refused(synth):
    with pytest.raises(UsageError, match="must be at least 1"):
        loader(synth, buffer_videos=0)
    with pytest.raises(UsageError, match="2 labels for 90 videos"):
        StreamingLoader(synth.cache, synth.families, synth.ids, np.array([0, 1]))
    with pytest.raises(UsageError, match=r"labels must be \(videos,\) or \(videos, categories\)"):
        StreamingLoader(synth.cache, synth.families, synth.ids, np.zeros((90, 2, 1)))


def category_labels(n: int, k: int, seed: int = 0) -> np.ndarray:
    """(n, k) 0/1 labels with a fifth of the cells NaN (not labelled)."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, k)) < 0.5).astype(np.float64)
    return np.where(rng.random((n, k)) < 0.2, np.nan, y)


def test_batches_carry_each_videos_row_of_category_labels(synth):
    y = category_labels(len(synth.ids), 3)
    stream = StreamingLoader(
        synth.cache, synth.families, synth.ids, y, batch_size=4, buffer_videos=24, slice_videos=10
    )
    row = dict(zip(synth.ids, y))
    seen = 0
    for batch in stream.epoch(1):
        assert batch.labels.shape == (len(batch), 3) and batch.labels.dtype == np.float64
        for vid, labels in zip(batch.video_ids, batch.labels):
            np.testing.assert_array_equal(labels, row[vid])  # NaN where NaN
        seen += len(batch)
    assert seen == len(synth.ids)


def test_streaming_moments_equal_numpy_over_the_concatenated_rows(synth):
    moments = loader(synth).moments()
    data = load_sequences(synth.cache, synth.families, synth.ids)
    for name, m in data.modalities.items():
        rows = m.values[m.mask].astype(np.float64)
        assert moments[name].count == len(rows)
        np.testing.assert_allclose(moments[name].mean, rows.mean(axis=0), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(moments[name].std, rows.std(axis=0), rtol=1e-10, atol=1e-12)


def test_moments_merge_in_any_chunking():
    rows = np.random.default_rng(0).normal(3.0, 2.0, size=(1000, 5)).astype(np.float32)
    whole = Moments(5).update(rows)
    parts = Moments(5)
    for a, b in [(0, 1), (1, 400), (400, 400), (400, 999), (999, 1000)]:
        parts.update(rows[a:b])
    np.testing.assert_allclose(parts.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(parts.std, whole.std, rtol=1e-12)
    np.testing.assert_allclose(whole.std, rows.astype(np.float64).std(axis=0), rtol=1e-12)


@pytest.mark.parametrize("stats", [("mean",), ("mean", "std", "max", "min")])
def test_pooled_statistics_shard_by_shard_equal_the_in_memory_ones(synth, stats):
    ids = list(reversed(synth.ids))  # an order unlike the shards'
    data = load_sequences(synth.cache, synth.families, ids)
    want, want_names = pooled_statistics(data, stats, order=sorted(synth.families))
    got, names = pooled_from_cache(synth.cache, synth.families, ids, stats)
    assert names == want_names and got.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))  # the empty YOLO videos
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("name", ["lightgbm", "logreg"])
def test_tabular_heads_pooled_shard_by_shard_equal_the_in_memory_ones(synth, name):
    from harmcache.heads.base import make_head

    train, val = synth.ids[::2], synth.ids[1::2]
    y = np.array(synth.labels)
    head = make_head(name)
    pooled = {
        part: pool_cache(synth.cache, synth.families, ids, head.pooled_stats, y[k::2])
        for k, (part, ids) in enumerate((("train", train), ("val", val)))
    }
    memory = {
        part: load_sequences(synth.cache, synth.families, ids, y[k::2])
        for k, (part, ids) in enumerate((("train", train), ("val", val)))
    }
    quiet = lambda report: None  # noqa: E731
    a = make_head(name).fit(pooled["train"], eval_set=pooled["val"], on_epoch=quiet)
    b = make_head(name).fit(memory["train"], eval_set=memory["val"], on_epoch=quiet)
    np.testing.assert_allclose(
        a.predict_proba(pooled["val"]), b.predict_proba(memory["val"]), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        a.predict_proba(memory["val"]), b.predict_proba(pooled["val"]), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(UsageError, match="X must be a SequenceData, got PooledData"):
        TransformerHead(epochs=1).fit(pooled["train"])
    other = "mean" if name == "lightgbm" else "mean,std"
    with pytest.raises(UsageError, match="was pooled with"):
        make_head("lightgbm", stats=other).fit(pooled["train"], on_epoch=quiet)


def test_the_content_scan_from_the_cache_equals_the_in_memory_one(synth):
    ids = list(reversed(synth.ids))
    want = scan_data(load_sequences(synth.cache, synth.families, ids))
    got = scan_cache(synth.cache, synth.families, ids)
    assert sorted(got) == sorted(want)
    for name in want:
        for key in ("has", "big", "small", "finite"):
            np.testing.assert_array_equal(getattr(got[name], key), getattr(want[name], key))
        assert got[name].same_rows == want[name].same_rows and got[name].dim == want[name].dim
    assert not got["yolo"].has[[ids.index(synth.ids[3]), ids.index(synth.ids[40])]].any()


def quality(head: TransformerHead, data) -> float:
    from harmcache import metrics

    return metrics.best_f1(data.labels, head.predict_proba(data)[:, 1])[0]


def test_a_transformer_trained_through_the_loader_learns_the_planted_signal(tmp_path):
    synth = synthetic_cache.build(tmp_path, n=120, shard_size=30)
    train_ids, val_ids = synth.ids[::2], synth.ids[1::2]
    y = np.array(synth.labels)
    val = load_sequences(synth.cache, synth.families, val_ids, y[1::2])
    settings = {"d_model": 16, "layers": 1, "dim_feedforward": 32, "epochs": 10, "lr": 3e-3}
    stream = StreamingLoader(
        synth.cache, synth.families, train_ids, y[::2], batch_size=8, buffer_videos=32, seed=0
    )
    streamed = TransformerHead(batch_size=8, **settings).fit_stream(stream)
    memory = TransformerHead(batch_size=8, **settings).fit(
        load_sequences(synth.cache, synth.families, train_ids, y[::2])
    )
    assert quality(memory, val) >= 0.9
    assert quality(streamed, val) >= quality(memory, val) - 0.05
    again = TransformerHead(batch_size=8, **settings).fit_stream(stream)
    assert np.array_equal(streamed.predict_proba(val), again.predict_proba(val))
    # The normalisation statistics of the one streaming pass are those of the in-memory fit.
    for name in synth.families:
        np.testing.assert_allclose(
            streamed.statistics_[name]["mean"], memory.statistics_[name]["mean"], rtol=1e-9
        )
    streamed.save(tmp_path / "head")
    assert (tmp_path / "head" / "statistics.json").exists()


def test_a_transformer_trained_through_the_loader_scores_many_categories(tmp_path):
    synth = synthetic_cache.build(tmp_path, n=40, shard_size=20)
    y = category_labels(40, 2, seed=1)
    y[:, 0] = np.where(np.isnan(y[:, 0]), np.nan, synth.labels)  # one learnable category
    stream = StreamingLoader(synth.cache, synth.families, synth.ids, y, batch_size=8, seed=0)
    head = TransformerHead(d_model=16, layers=1, dim_feedforward=32, epochs=2, batch_size=8)
    reports = []
    data = load_sequences(synth.cache, synth.families, synth.ids)
    head.fit_stream(stream, eval_set=(data, y), on_epoch=reports.append)
    assert head.n_outputs_ == 2 and len(head.pos_weight_) == 2
    scores = head.predict_categories(data)
    assert scores.shape == (40, 2) and np.isfinite(scores).all()
    assert [c["category"] for c in reports[-1].categories] == [0, 1]


def test_old_layout_caches_still_train(tmp_path):
    synth = synthetic_cache.build(tmp_path, n=40, shard_size=20)
    for fam in synth.families.values():
        folder = synth.cache.family_dir(fam)
        for shard in sorted(folder.glob("shard-*.h5")):
            items = list(read_videos(shard).values())
            write_v1_shard(folder, fam, items)
    with pytest.raises(AssertionError):  # the shards really are in the old layout now
        assert all(_version(p) == 2 for p in folder.glob("shard-*.h5"))
    y = np.array(synth.labels)
    stream = StreamingLoader(synth.cache, synth.families, synth.ids, y, batch_size=8, seed=0)
    assert sorted(order(stream)) == sorted(synth.ids)
    head = TransformerHead(d_model=16, layers=1, dim_feedforward=32, epochs=2, batch_size=8)
    head.fit_stream(stream)
    assert head.predict_proba(load_sequences(synth.cache, synth.families, synth.ids)).shape == (
        40,
        2,
    )


def _version(path) -> int:
    import h5py

    with h5py.File(path, "r") as f:
        return int(f.attrs["format_version"])
