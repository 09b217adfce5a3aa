"""The Transformer's sequence cap: each video is mean-pooled to at most `max_rows` tokens per
modality before projection, on its own, so long videos cost O(max_rows²) attention and a video
scores the same whatever it is batched with."""

from __future__ import annotations

import numpy as np
import pytest

from harmcache.heads.data import Modality, SequenceData
from harmcache.heads.transformer import TransformerHead, _pool_rows


def modality(lengths: list[int], dim: int = 3, seed: int = 0) -> Modality:
    rng = np.random.default_rng(seed)
    n, length = len(lengths), max(lengths)
    mask = np.arange(length)[None, :] < np.array(lengths)[:, None]
    values = (rng.normal(size=(n, length, dim)) * mask[..., None]).astype(np.float32)
    timestamp = np.where(mask, np.arange(length)[None, :] * 0.5, 0.0)
    position = np.where(mask, timestamp / np.maximum(np.array(lengths) * 0.5, 1)[:, None], 0)
    return Modality(values, mask, timestamp, position.astype(np.float32))


def test_short_videos_are_passed_through_unchanged():
    m = modality([32, 20])
    assert _pool_rows(m, 256) is m
    assert _pool_rows(m, None) is m


def test_pooling_averages_consecutive_rows_per_video():
    m = modality([10, 4])
    out = _pool_rows(m, 4)
    # Video 0: 10 rows in groups of 3 -> 4 tokens (3, 3, 3, 1 rows); video 1 fits as it is.
    assert out.values.shape == (2, 4, 3)
    assert out.mask.tolist() == [[True] * 4, [True] * 4]
    np.testing.assert_allclose(out.values[0, 0], m.values[0, :3].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(out.values[0, 3], m.values[0, 9], rtol=1e-6)
    np.testing.assert_allclose(out.timestamp[0], [0.5, 2.0, 3.5, 4.5])
    np.testing.assert_array_equal(out.values[1], m.values[1, :4])


def test_masked_rows_are_left_out_of_the_means():
    m = modality([8])
    m.mask[0, 1] = False
    m.values[0, 1] = 1e6
    out = _pool_rows(m, 4)
    np.testing.assert_allclose(out.values[0, 0], m.values[0, 0], rtol=1e-6)
    assert out.mask[0].all()


def test_a_video_pools_the_same_alone_or_beside_a_longer_one():
    both = modality([600, 300])
    alone = Modality(
        *(a[1:2, :300] for a in (both.values, both.mask, both.timestamp, both.position))
    )
    np.testing.assert_array_equal(
        _pool_rows(both, 256).values[1, :150], _pool_rows(alone, 256).values[0]
    )


def test_thousands_of_rows_fit_and_score_within_the_cap():
    lengths = [3000, 2400, 1800, 3000, 2000, 2600]
    data = SequenceData(
        [str(i) for i in range(6)],
        {"clip": modality(lengths, dim=8, seed=1)},
        None,
        np.array(lengths) * 0.5,
    )
    y = np.array([0, 1, 0, 1, 0, 1])
    head = TransformerHead(d_model=16, dim_feedforward=32, epochs=1, max_rows=64).fit(data, y)
    one = head.predict_proba(data.subset([0]))[:, 1]
    np.testing.assert_allclose(one, head.predict_proba(data)[:1, 1], rtol=1e-5)


def test_default_cap_is_256():
    assert TransformerHead().max_rows == 256


@pytest.mark.parametrize("bad", [0, -3])
def test_cap_must_be_positive(bad):
    from harmcache.errors import UsageError

    with pytest.raises(UsageError, match=f"max_rows must be at least 1, got {bad}"):
        TransformerHead(max_rows=bad).fit(
            SequenceData(["a", "b"], {"clip": modality([4, 4])}, None, np.array([2.0, 2.0])),
            np.array([0, 1]),
        )
