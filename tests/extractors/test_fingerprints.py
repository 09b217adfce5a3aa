"""Existing caches stay valid: the default specs' fingerprints are pinned to the values they
had before time-dense sampling and streamed decoding existed."""

from __future__ import annotations

import pytest

from harmcache.extractors.base import ExtractSettings, WeightsSource, get_extractor

RANDOM = WeightsSource(random_init=True, seed=0)
DEMO = dict(frames=8, windows=1, yolo_imgsz=160, slowfast_short_side=128, slowfast_crop=128)
PINNED = {
    ("default", "cpu", "clip"): "7f84692934c871ef3607b8821311fb2cef9a76ebd6ae7215f3a76100918e18d6",
    ("default", "cpu", "yolo"): "db3d0ba2a0ac1b471b5b8ec289f245f3944e3e22d63abc9118c3dc7965ae54bc",
    ("default", "cpu", "slowfast"): "fd04b96735028502bd03cc1b076627995f96a8b315137a0716e6073660e1b85c",  # noqa: E501
    ("default", "cuda", "clip"): "eb579a8867c933c510215e8b3e9ccf14caa941357f8f7262840cf4266bd40cb5",
    ("default", "cuda", "yolo"): "a6dc275003bb5126e89a5bb6acfd61e508772421c1af2eea4d8692492a962bee",
    ("default", "cuda", "slowfast"): "7ba40ff0e44d7f8067aa18f415ae0a062ae795d159d47f626812448fe4202357",  # noqa: E501
    ("demo", "cpu", "clip"): "05b32647da474515e0018f76b87e196b4ad0896b00d92e07ecea0d50d5630f18",
    ("demo", "cpu", "yolo"): "a4faca0fa3172a41d31d643f5eba2a5e1593550e4ddbff1fbf86b5136a0675a6",
    ("demo", "cpu", "slowfast"): "5abc64fae13da1196f2baf86203c46a07a9190ac1499e8657258b7517b98b9ff",
}  # fmt: skip


@pytest.mark.parametrize("preset,device,name", sorted(PINNED))
def test_default_fingerprints_never_change(preset, device, name):
    extra = dict(DEMO, tta="flip") if preset == "demo" else {}
    settings = ExtractSettings(weights=RANDOM, device=device, **extra)
    assert get_extractor(name)(settings).fingerprint == PINNED[(preset, device, name)]


def test_the_decode_chunk_size_is_not_in_the_spec():
    small = ExtractSettings(weights=RANDOM, chunk_frames=3)
    for name in ("clip", "yolo", "slowfast"):
        assert get_extractor(name)(small).fingerprint == PINNED[("default", "cpu", name)]
