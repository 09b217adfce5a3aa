"""Family selection (provenance guards), padded loading, and the content guards."""

from __future__ import annotations

import numpy as np
import pytest

from harmcache.errors import CacheError, DataError
from harmcache.store.family import Family
from harmcache.train.features import check_features, load_sequences, select_families
from harmcache.types import VideoFeatures, VideoInfo
from tests.synthetic_cache import build, make_record, spec


def add_family(syn, extractor, ids, *, frames=4, dim=16, random_init=True, value=None):
    """Commit `ids` to a second family of `extractor` (a different spec, so a new fingerprint)."""
    family = Family.from_spec(spec(extractor, frames=frames, random_init=random_init))
    rng = np.random.default_rng(1)
    items = []
    for vid in ids:
        record = make_record(rng, 0, frames, dim, 4.0, 0.0)
        if value is not None:
            record.features[:] = value
        items.append(
            VideoFeatures(vid, VideoInfo(100, 25.0, 4.0, 64, 32, "synthetic"), "x", record)
        )
    syn.cache.commit(family, items)
    return family


def test_default_selects_every_covering_extractor(tmp_path):
    syn = build(tmp_path, 6)
    chosen = select_families(syn.cache, syn.ids)
    assert chosen == syn.families


def test_mixed_fingerprints_are_refused_and_family_picks_one(tmp_path):
    syn = build(tmp_path, 6)
    other = add_family(syn, "clip", syn.ids[:2])
    with pytest.raises(DataError, match=r"clip features from 2 fingerprints .* --family NAME"):
        select_families(syn.cache, syn.ids)
    chosen = select_families(syn.cache, syn.ids, family_names=[syn.families["clip"].name])
    assert chosen["clip"] == syn.families["clip"]
    chosen = select_families(syn.cache, syn.ids[:2], ["clip"], family_names=[other.name])
    assert chosen == {"clip": other}
    with pytest.raises(CacheError, match=r"no family 'clip-nope'"):
        select_families(syn.cache, syn.ids, family_names=["clip-nope"])


def test_random_init_mixed_with_real_weights_is_refused(tmp_path):
    syn = build(tmp_path, 6, random_init={"clip": True, "yolo": False, "slowfast": False})
    with pytest.raises(DataError, match=r"refusing to mix random-init features \(clip-"):
        select_families(syn.cache, syn.ids)
    # Leaving the random-init backbone out is fine.
    assert set(select_families(syn.cache, syn.ids, ["yolo", "slowfast"])) == {"slowfast", "yolo"}


def test_missing_extractor(tmp_path):
    syn = build(tmp_path, 4, dims={"clip": 8})
    with pytest.raises(DataError, match=r"no yolo features for the labelled videos"):
        select_families(syn.cache, syn.ids, ["clip", "yolo"])


def test_variable_lengths_pad_and_mask(tmp_path):
    syn = build(tmp_path, 10, variable_length=True, empty={"slowfast": [3]})
    data = load_sequences(syn.cache, syn.families, syn.ids)
    clip = data.modalities["clip"]
    lengths = clip.mask.sum(axis=1)
    assert clip.values.shape == (10, lengths.max(), 16)
    for i in range(10):
        assert not clip.values[i, lengths[i] :].any()
        assert np.all(clip.position[i, : lengths[i]] <= 1)
    assert not data.modalities["slowfast"].mask[3].any()
    assert list(data.modalities) == ["clip", "slowfast", "yolo"]


def test_all_zero_features_are_refused_naming_the_videos(tmp_path):
    syn = build(tmp_path, 6, dims={"clip": 8})
    data = load_sequences(syn.cache, syn.families, syn.ids)
    data.modalities["clip"].values[[1, 4]] = 0
    with pytest.raises(DataError, match=r"clip features are all-zero for 2 of 6 videos: ") as info:
        check_features(data)
    assert syn.ids[1][:12] in str(info.value) and syn.ids[4][:12] in str(info.value)


def test_features_identical_for_every_video_are_refused(tmp_path):
    syn = build(tmp_path, 5, dims={"clip": 8, "yolo": 8})
    data = load_sequences(syn.cache, syn.families, syn.ids)
    data.modalities["yolo"].values[data.modalities["yolo"].mask] = 0.25
    with pytest.raises(DataError, match=r"yolo features are identical for all 5 videos"):
        check_features(data)
    check_features(data, across_videos=False)  # a few evaluation videos may share one vector


def test_a_video_without_detections_is_fine(tmp_path):
    syn = build(tmp_path, 5, dims={"clip": 8, "yolo": 8})
    data = load_sequences(syn.cache, syn.families, syn.ids)
    data.modalities["yolo"].values[2] = 0  # no object in any frame: legitimate
    check_features(data)


def test_video_with_no_usable_rows_is_refused(tmp_path):
    syn = build(tmp_path, 5, dims={"clip": 8}, empty={"clip": [0]})
    data = load_sequences(syn.cache, syn.families, syn.ids)
    with pytest.raises(DataError, match=r"1 videos have no usable features in any modality"):
        check_features(data)


def test_non_finite_features_are_refused(tmp_path):
    syn = build(tmp_path, 4, dims={"clip": 8})
    data = load_sequences(syn.cache, syn.families, syn.ids)
    data.modalities["clip"].values[0, 0, 0] = np.nan
    with pytest.raises(DataError, match=r"clip features hold NaN or inf for 1 videos"):
        check_features(data)
