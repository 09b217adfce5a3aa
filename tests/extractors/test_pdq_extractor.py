"""The pdq extractor (harmcache/extractors/pdq.py): rows at --pdq-fps in the one decode pass,
hashes equal to Meta's PDQ on the same pixels (and to vPDQ's own decode), a weightless spec
whose fingerprint stands still, a still image's dihedral hashes, and no training on it unless
asked."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pdqhash
import pytest

from harmcache.extract.jobs import VideoJob, decode_job
from harmcache.extract.per_video import extract_item, extract_video
from harmcache.extract.respec import extractor_for_spec
from harmcache.extractors.base import ExtractSettings, WeightsSource, get_extractor
from harmcache.extractors.pdq import DIHEDRAL, QUALITY
from harmcache.known import pdq
from harmcache.store.cache import FeatureCache
from harmcache.train.features import select_families
from harmcache.types import VideoInfo
from harmcache.video.decode import VideoSource
from harmcache.video.decoded import DecodedVideo
from harmcache.video.encode import write_video
from harmcache.video.sampling import fps_indices
from tests import synthetic_cache
from tests.running import TINY_SETTINGS


def textured(n: int, h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """Smooth seeded pictures (coarse noise, bicubic-enlarged): quality 100 for PDQ, and a lossy
    codec keeps them recognisable."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(n, 12, 16, 3), dtype=np.uint8)
    return np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_CUBIC) for c in coarse])


def settings(**changes) -> ExtractSettings:
    return ExtractSettings(**{"weights": WeightsSource(random_init=True), **changes})


def extracted(path, **changes):
    """The pdq family's record of one file, through the extraction path."""
    s = settings(**changes)
    extractor = get_extractor("pdq")(s)
    return extract_item(decode_job(VideoJob(str(path), "v", (("pdq", s),))), extractor).record


def hashes_of(record) -> np.ndarray:
    return pdq.from_bits(record.features)


# --- spec and fingerprint ------------------------------------------------------------------
def test_the_spec_has_no_weights_and_the_fingerprint_ignores_what_changes_no_hash():
    base = get_extractor("pdq")(settings())
    assert base.spec()["weights"] == {"kind": "none"}
    assert base.weight_files == () and base.dim == 256
    same = [
        ExtractSettings(),  # real weights asked for: there are none to find, offline or not
        settings(weights=WeightsSource(random_init=True, seed=3)),
        settings(batch_size=3, device="cuda", cpu_threads=2),
        settings(frames=5, fps=None, windows=2, tta="flip", yolo_imgsz=64),
    ]
    for s in same:
        assert get_extractor("pdq")(s).fingerprint == base.fingerprint
    for s in (settings(pdq_fps=2.0), settings(decode_short_side=240)):
        assert get_extractor("pdq")(s).fingerprint != base.fingerprint


def test_a_version_bump_changes_the_fingerprint(monkeypatch):
    before = get_extractor("pdq")(settings()).fingerprint
    monkeypatch.setattr(get_extractor("pdq"), "version", get_extractor("pdq").version + "-next")
    assert get_extractor("pdq")(settings()).fingerprint != before


def test_the_fingerprint_is_the_same_in_another_process():
    code = (
        "from harmcache.extractors.base import ExtractSettings, get_extractor;"
        "print(get_extractor('pdq')(ExtractSettings(pdq_fps=2.0)).fingerprint)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == get_extractor("pdq")(settings(pdq_fps=2.0)).fingerprint


def test_a_saved_spec_rebuilds_the_extractor_on_any_device():
    spec = get_extractor("pdq")(settings(pdq_fps=0.5, device="cuda")).spec()
    again = extractor_for_spec(json.loads(json.dumps(spec)), device="cpu")
    assert again.settings.pdq_fps == 0.5 and again.spec() == spec


# --- rows ----------------------------------------------------------------------------------
@pytest.mark.parametrize("fps", [1.0, 3.0])
def test_rows_are_the_hashes_of_frames_at_pdq_fps(fps):
    frames = textured(40)
    info = VideoInfo(40, 8.0, 5.0, 128, 96, "synthetic")
    video = DecodedVideo(info, np.arange(40), frames)
    extractor = get_extractor("pdq")(settings(pdq_fps=fps, batch_size=4))
    record = extractor.extract(video)
    rows = fps_indices(np.arange(40) / 8.0, fps)
    np.testing.assert_array_equal(record.frame_index, rows)
    np.testing.assert_allclose(record.timestamp, rows / 8.0)
    assert record.features.dtype == np.float32 and set(np.unique(record.features)) <= {0.0, 1.0}
    expected, quality = pdq.hash_frames(frames[rows])
    np.testing.assert_array_equal(hashes_of(record), expected)
    np.testing.assert_array_equal(record.extras[QUALITY], quality)
    assert record.extras[QUALITY].dtype == np.int64
    assert record.extras[DIHEDRAL].shape == (0, 8, 32)  # a video keeps no variants


def test_a_still_image_is_one_row_with_its_dihedral_hashes(tmp_path):
    from PIL import Image

    rgb = textured(1, 360, 480)[0]  # PDQ's mirrors are looser on small pictures
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    record = extracted(path, pdq_fps=4.0)
    np.testing.assert_array_equal(record.timestamp, [0.0])
    np.testing.assert_array_equal(hashes_of(record), pdq.hash_frame(rgb)[0][None])
    variants = record.extras[DIHEDRAL]
    assert variants.shape == (1, 8, 32) and variants.dtype == np.uint8
    np.testing.assert_array_equal(variants[0], pdq.dihedral(rgb))
    mirrored, _ = pdq.hash_frame(rgb[:, ::-1])  # a mirrored upload of the known picture
    assert pdq.hamming(mirrored[None], hashes_of(record))[0, 0] > pdq.MATCH_DISTANCE
    assert pdq.hamming(mirrored[None], variants[0]).min() <= pdq.MATCH_DISTANCE


def test_hash_video_gives_the_familys_rows(tmp_path):
    path = write_video(tmp_path / "v.mp4", textured(30), fps=10, codec="libx264")
    record = extracted(path, pdq_fps=2.0)
    got = pdq.hash_video(path, fps=2.0)
    np.testing.assert_array_equal(got.hashes, hashes_of(record))
    np.testing.assert_array_equal(got.times, record.timestamp)
    np.testing.assert_array_equal(got.quality, record.extras[QUALITY])


# --- the single decode pass ----------------------------------------------------------------
def test_pdq_runs_in_the_decode_pass_the_backbones_share(tmp_path):
    frames = textured(24)
    path = write_video(tmp_path / "v.mp4", frames, fps=8)  # lossless: decoded == written
    s = TINY_SETTINGS
    names = ("yolo", "pdq")  # the cheapest backbone: what matters is the shared plan
    job = VideoJob(str(path), "v", tuple((name, s) for name in names))
    decoded = decode_job(job)
    extractors = {name: get_extractor(name)(s) for name in names}
    outcome = extract_video(decoded.plan, decoded.chunks(), extractors, replay=decoded.chunks)
    assert set(outcome.features) == set(names) and not outcome.failures
    record = outcome.features["pdq"].record
    rows = fps_indices(np.arange(24) / 8.0, 1.0)
    assert set(rows) <= set(decoded.plan.sides[s.decode_short_side])  # one plan for both
    np.testing.assert_array_equal(hashes_of(record), pdq.hash_frames(frames[rows])[0])


# --- agreement with the reference ----------------------------------------------------------
def test_rows_equal_meta_pdq_on_the_decoded_pixels_of_a_lossy_video(tmp_path):
    frames = textured(40, 480, 640)  # short side 480: shrunk to the 360 decode size
    path = write_video(tmp_path / "v.mp4", frames, fps=8, codec="libx264")
    record = extracted(path)
    with VideoSource(path) as source:
        seen = source.read(record.frame_index, max_short_side=360)
        full = source.read(record.frame_index)
    reference = np.stack([np.packbits(pdqhash.compute(f)[0].astype(np.uint8)) for f in seen])
    assert seen.shape[1:3] == (360, 480)
    np.testing.assert_array_equal(hashes_of(record), reference)  # distance 0
    # vPDQ hashes full-size frames; the family hashes the 360 decode size, as PDQ's own photo
    # hasher shrinks big pictures first. On this content that costs 10 to 18 bits (the codec's
    # loss, full-size decoded against written frames, is 0 to 6): every row still matches.
    at_full_size = np.diag(pdq.hamming(hashes_of(record), pdq.hash_frames(full)[0]))
    assert at_full_size.max() <= 20, at_full_size


@pytest.mark.parametrize("codec", ["libx264rgb", "libx264"])
def test_rows_agree_with_vpdq_decoding_the_file_itself(tmp_path, codec):
    vpdq = pytest.importorskip("vpdq")
    path = write_video(tmp_path / "v.mp4", textured(40), fps=8, codec=codec)
    record = extracted(path)
    by_frame = {f.frame_number: f for f in vpdq.computeHash(str(path), seconds_per_hash=0)}
    theirs = pdq.from_hex_rows([by_frame[int(i)].hex for i in record.frame_index])
    distance = np.diag(pdq.hamming(hashes_of(record), theirs))
    assert distance.max() <= 4, distance  # measured 0: the same pixels, luma rounded alike
    quality = [by_frame[int(i)].quality for i in record.frame_index]
    np.testing.assert_array_equal(record.extras[QUALITY], quality)


# --- the command line and training ---------------------------------------------------------
def test_extract_hashes_by_default_and_takes_pdq_fps(tmp_path, cli):
    from harmcache.extract.config import ExtractConfig

    assert "pdq" in ExtractConfig().extractors
    path = write_video(tmp_path / "v" / "a.mp4", textured(24), fps=8)
    out = tmp_path / "cache"
    cli.ok("extract", path, "--out", out, "--extractors", "pdq", "--pdq-fps", "2", "--workers", 0)
    with FeatureCache(out) as cache:
        (family,) = cache.families()
        assert family.spec["options"]["fps"] == 2.0 and not family.random_init
        (video,) = cache.load(family).values()
    assert len(video.record.features) == 6 and set(video.record.extras) == {QUALITY, DIHEDRAL}
    bad = cli.invoke("extract", path, "--out", out, "--pdq-fps", "0")
    assert bad.exit_code == 2 and "--pdq-fps must be above 0, got 0" in bad.stderr


def test_heads_leave_pdq_out_unless_it_is_named(tmp_path):
    syn = synthetic_cache.build(
        tmp_path, 6, dims={"clip": 16, "pdq": 256}, random_init=False, shard_size=6
    )
    assert set(select_families(syn.cache, syn.ids)) == {"clip"}
    assert set(select_families(syn.cache, syn.ids, ["clip", "pdq"])) == {"clip", "pdq"}
    pinned = select_families(syn.cache, syn.ids, family_names=[syn.families["pdq"].name])
    assert set(pinned) == {"clip", "pdq"}
