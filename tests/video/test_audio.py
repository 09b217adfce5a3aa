"""The audio extractor on real encoded videos with real AAC sound tracks: decoding, resampling
and alignment to the video's time axis, every channel layout (7.1, custom orders, 16 channels)
down to the same mono, VGGish framing, rows that do not depend on how the sound was cut,
weights, fingerprints, and what a silent or damaged sound track becomes."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import harmcache.video.audio as audio_module
from harmcache.errors import VideoError, WeightsUnavailable
from harmcache.extractors.audio import (
    EXAMPLE_SAMPLES,
    OVERHANG,
    AudioExtractor,
    example_count,
    log_mel_examples,
    segments,
)
from harmcache.extractors.base import ExtractSettings, WeightsSource, get_extractor
from harmcache.hashing import sha256_file
from harmcache.video.audio import RESAMPLER, SAMPLE_RATE, has_audio, read_audio
from harmcache.video.audio_child import read_audio_isolated
from harmcache.video.decode import VideoSource
from harmcache.video.encode import encode_sound, write_video
from tests.conftest import coded_frames
from tests.media_corpus import ffmpeg, need_ffmpeg

RANDOM = WeightsSource(random_init=True, seed=0)
RATE = 44100


def tone(seconds: float, hz: float = 440.0, rate: int = RATE, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def sound_video(path: Path, sound: np.ndarray | None, *, frames: int = 16, fps: int = 8) -> Path:
    return write_video(path, coded_frames(frames, 32, 64), fps=fps, codec="libx264", audio=sound)


def broken_sound_video(path: Path, *, seconds: float = 2.0) -> Path:
    """A valid picture and an AAC track whose packets after the first few are noise."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=Fraction(8))
        video.width, video.height, video.pix_fmt = 64, 32, "yuv420p"
        for packet in encode_sound(container, np.stack([tone(seconds)] * 2), RATE):
            if packet.pts is not None and packet.pts > 4096:
                data = bytearray(bytes(packet))
                data[2:] = rng.integers(0, 256, len(data) - 2, dtype=np.uint8).tobytes()
                broken = av.Packet(bytes(data))
                broken.pts, broken.dts, broken.time_base = packet.pts, packet.dts, packet.time_base
                broken.stream = packet.stream
                packet = broken
            container.mux(packet)
        for frame in coded_frames(int(seconds * 8), 32, 64):
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
    return path


def late_sound_video(path: Path, delay: float) -> Path:
    """One second of tone that starts `delay` seconds after the first frame."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=Fraction(8))
        video.width, video.height, video.pix_fmt = 64, 32, "yuv420p"
        audio = container.add_stream("aac", rate=RATE)
        audio.layout = "mono"
        sound = tone(1.0)[None]
        for start in range(0, sound.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(sound[:, start : start + 1024]), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = RATE, start + round(delay * RATE)
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
        for frame in coded_frames(16, 32, 64):
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
    return path


CHANNELS = {"mono": 1, "stereo": 2, "5.1": 6, "6.1": 7, "7.1": 8, "hexadecagonal": 16}
"""FFmpeg layouts whose channels the ffmpeg CLI's `pan` fills one for one."""


def surround_video(
    path: Path, layout: str, codec: str, *, seconds: float = 1.0, picture: bool = True
) -> Path:
    """The same 440 Hz sine (48 kHz) on every channel of `layout`, beside a small picture
    unless the container holds sound alone (.wav)."""
    need_ffmpeg()
    pan = f"pan={layout}|" + "|".join(f"c{i}=c0" for i in range(CHANNELS[layout]))
    video = ["-f", "lavfi", "-i", f"testsrc2=size=64x48:rate=8:duration={seconds}"]
    sound = ["-f", "lavfi", "-i", f"sine=f=440:d={seconds}:r=48000"]
    if not picture:
        ffmpeg(*sound, "-af", pan, "-c:a", codec, path)
        return path
    ffmpeg(
        *video, *sound, "-af", pan, "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", codec, "-shortest", path,
    )  # fmt: skip
    return path


def planar_reading(path: Path, monkeypatch) -> np.ndarray:
    """The samples as read before any layout was supported: planar frames (`RESAMPLER`'s fltp)
    averaged with `to_ndarray().mean(axis=0)`. Safe only below 8 channels in a standard
    layout, where it did not crash."""
    with monkeypatch.context() as patched:
        patched.setattr(audio_module, "PACKED", RESAMPLER)
        patched.setattr(audio_module, "channel_mean", lambda frame: frame.to_ndarray().mean(0))
        return np.concatenate(list(read_audio(path)))


def settings(**changes) -> ExtractSettings:
    return ExtractSettings(**{"batch_size": 4, "weights": RANDOM, **changes})


@pytest.fixture(scope="module")
def audio() -> AudioExtractor:
    extractor = get_extractor("audio")(settings())
    extractor.load()
    return extractor


def extract(extractor: AudioExtractor, path: Path):
    source = VideoSource(path)
    return extractor.extract_file(path, source.info, source.times)


# --- decoding and resampling ---------------------------------------------------------------
def test_sound_is_resampled_to_16k_mono_and_keeps_its_pitch(tmp_path):
    stereo = np.stack([tone(2.0, 440), tone(2.0, 440)])
    path = sound_video(tmp_path / "v.mp4", stereo)
    samples = np.concatenate(list(read_audio(path)))
    assert samples.dtype == np.float32
    assert abs(len(samples) - 2 * SAMPLE_RATE) < 0.05 * SAMPLE_RATE  # AAC adds a frame or so
    spectrum = np.abs(np.fft.rfft(samples[:SAMPLE_RATE]))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)  # 1 s of samples: bins are 1 Hz
    assert 0.4 < np.abs(samples[SAMPLE_RATE // 2 : SAMPLE_RATE]).max() < 0.6


def test_reading_stops_at_the_end_of_the_picture(tmp_path):
    path = sound_video(tmp_path / "v.mp4", tone(3.0), frames=8)  # 1 s of picture, 3 s of sound
    samples = np.concatenate(list(read_audio(path, end=1.0)))
    assert len(samples) == SAMPLE_RATE


def test_blocks_have_the_asked_size_and_the_same_samples_whatever_the_size(tmp_path):
    path = sound_video(tmp_path / "v.mp4", tone(2.0))
    small = list(read_audio(path, block=1000))
    big = list(read_audio(path, block=EXAMPLE_SAMPLES))
    assert {len(b) for b in small[:-1]} == {1000} and 0 < len(small[-1]) <= 1000
    assert {len(b) for b in big[:-1]} == {EXAMPLE_SAMPLES}
    np.testing.assert_array_equal(np.concatenate(small), np.concatenate(big))


def test_sound_that_starts_late_is_preceded_by_silence(tmp_path):
    path = late_sound_video(tmp_path / "late.mp4", delay=0.5)
    samples = np.concatenate(list(read_audio(path, end=2.0)))
    quarter = SAMPLE_RATE // 4
    assert np.abs(samples[: int(0.4 * SAMPLE_RATE)]).max() < 0.02
    assert np.abs(samples[int(0.6 * SAMPLE_RATE) : int(0.6 * SAMPLE_RATE) + quarter]).min() < 0.1
    assert np.abs(samples[int(0.6 * SAMPLE_RATE) : int(0.6 * SAMPLE_RATE) + quarter]).max() > 0.4


def test_a_video_without_sound_has_no_samples(tmp_path):
    path = sound_video(tmp_path / "mute.mp4", None)
    assert not has_audio(path)
    assert list(read_audio(path)) == []


def test_a_damaged_sound_track_is_an_audio_error(tmp_path):
    path = broken_sound_video(tmp_path / "broken.mp4")
    assert has_audio(path)
    with pytest.raises(VideoError, match=r"audio_error: audio stream \(aac\) could not be decoded"):
        list(read_audio(path))
    # The picture is fine.
    assert VideoSource(path).info.n_frames == 16


# --- channel layouts -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "layout, codec, name",
    [
        ("stereo", "aac", "v.mp4"),
        ("5.1", "aac", "v.mp4"),
        ("mono", "libopus", "v.mkv"),
        ("5.1", "libopus", "v.mkv"),
        ("stereo", "pcm_s16le", "v.mov"),
        ("5.1", "pcm_s16le", "v.mov"),
        ("6.1", "flac", "v.mkv"),
    ],
)
def test_layouts_read_before_give_bit_identical_samples(tmp_path, monkeypatch, layout, codec, name):
    """Packed float, de-interleaved here, is the planar reading in another memory order: the
    features of every track that decoded before are unchanged, to the bit."""
    path = surround_video(tmp_path / name, layout, codec)
    new = np.concatenate(list(read_audio(path)))
    assert (
        new.view(np.uint32).tolist() == planar_reading(path, monkeypatch).view(np.uint32).tolist()
    )


def test_a_stereo_upload_reads_bit_identically_to_the_planar_reading(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    stereo = np.stack([tone(2.0, 440), rng.uniform(-0.3, 0.3, 2 * RATE).astype(np.float32)])
    path = sound_video(tmp_path / "v.mp4", stereo)  # 44.1 kHz AAC, channels that differ
    new = np.concatenate(list(read_audio(path)))
    assert (
        new.view(np.uint32).tolist() == planar_reading(path, monkeypatch).view(np.uint32).tolist()
    )


@pytest.mark.parametrize(
    "layout, codec, name, picture",
    [
        ("7.1", "pcm_s16le", "v.mkv", True),  # FFmpeg reads it as 8 unnamed channels
        ("7.1", "pcm_s16le", "v.mov", True),  # QuickTime's 7.1: a custom channel order
        ("6.1", "pcm_s16le", "v.mov", True),  # 7 channels in a custom order
        ("7.1", "flac", "v.mkv", True),
        ("7.1", "pcm_s16le", "v.wav", False),
        ("hexadecagonal", "pcm_s16le", "v.wav", False),  # 16 channels
    ],
)
def test_any_layout_reads_as_the_mean_of_its_channels(tmp_path, layout, codec, name, picture):
    """Each of these crashed PyAV (a segfault on 8 or more channels, a double free on a custom
    order); each is read through the guarded child, so a regression fails here, not the run."""
    mono = surround_video(tmp_path / f"mono-{name}", "mono", "pcm_s16le", picture=picture)
    path = surround_video(tmp_path / name, layout, codec, picture=picture)
    samples = np.concatenate(list(read_audio_isolated(path)))
    reference = np.concatenate(list(read_audio_isolated(mono)))
    assert samples.dtype == np.float32 and samples.shape == reference.shape
    # The same sound on every channel: the mean is that sound, to float32 rounding of the sum.
    np.testing.assert_allclose(samples, reference, rtol=0, atol=1e-7)
    assert 0.12 < np.abs(samples).max() < 0.13  # the sine's amplitude (1/8): nothing dropped


def test_a_7_1_track_gives_the_rows_of_its_stereo_and_mono_equivalents(audio, tmp_path):
    rows = {
        layout: extract(audio, surround_video(tmp_path / f"{layout}.mov", layout, "pcm_s16le"))
        for layout in ("mono", "stereo", "7.1")
    }
    assert len(rows["mono"].features) == 1
    np.testing.assert_array_equal(rows["stereo"].features, rows["mono"].features)  # (x + x) / 2
    np.testing.assert_allclose(rows["7.1"].features, rows["mono"].features, rtol=1e-4, atol=1e-7)
    np.testing.assert_array_equal(rows["7.1"].timestamp, rows["mono"].timestamp)


# --- framing -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("samples", "count"),
    [
        (0, 0),
        (1, 1),  # the only example: kept however short
        (EXAMPLE_SAMPLES - 1, 1),
        (EXAMPLE_SAMPLES, 1),
        (EXAMPLE_SAMPLES + EXAMPLE_SAMPLES // 2 - 1, 1),  # a short tail is dropped
        (EXAMPLE_SAMPLES + EXAMPLE_SAMPLES // 2, 2),  # half an example is kept
        (3 * EXAMPLE_SAMPLES, 3),
    ],
)
def test_example_count(samples, count):
    assert example_count(samples) == count


def test_examples_match_torchvggish_on_the_whole_track():
    from torchvggish.vggish_input import waveform_to_examples

    samples = np.random.default_rng(0).uniform(-0.5, 0.5, 5 * EXAMPLE_SAMPLES + OVERHANG)
    ours = log_mel_examples(samples, 5)
    reference = waveform_to_examples(samples, SAMPLE_RATE, return_tensor=False)
    assert ours.shape == (5, 96, 64) and reference.shape == (5, 96, 64)
    np.testing.assert_array_equal(ours, reference.astype(np.float32))


@pytest.mark.parametrize("block", [1, 999, EXAMPLE_SAMPLES, 3 * EXAMPLE_SAMPLES + 7])
def test_segments_do_not_depend_on_how_the_samples_arrive(block):
    samples = np.random.default_rng(1).uniform(-0.5, 0.5, 7 * EXAMPLE_SAMPLES + 9000)
    samples = samples.astype(np.float32)
    whole = log_mel_examples(samples, example_count(len(samples)))
    blocks = [samples[i : i + block] for i in range(0, len(samples), block)]
    parts = list(segments(blocks, per_segment=3))
    assert [len(p) for p in parts] == [3, 3, 2]  # 7 whole examples and a tail over half
    np.testing.assert_array_equal(np.concatenate(parts), whole)


# --- the extractor -------------------------------------------------------------------------
def test_rows_lie_on_the_video_time_axis(audio, tmp_path):
    path = sound_video(tmp_path / "v.mp4", tone(3.0), frames=24, fps=8)  # 3 s
    record = extract(audio, path)
    assert record.features.shape == (3, 128) and record.features.dtype == np.float32
    np.testing.assert_allclose(record.timestamp, [0.48, 1.44, 2.40])
    np.testing.assert_array_equal(record.frame_index, [3, 11, 19])  # the frame on screen then
    assert np.isfinite(record.features).all() and record.features.any()


def test_a_loud_burst_changes_only_the_rows_it_falls_in(audio, tmp_path):
    quiet = tone(3.0, amp=0.05)
    loud = quiet.copy()
    loud[int(2.0 * RATE) : int(2.3 * RATE)] = 0.8  # inside the third example [1.92, 2.88)
    a = extract(audio, sound_video(tmp_path / "quiet.mp4", quiet, frames=24)).features
    b = extract(audio, sound_video(tmp_path / "loud.mp4", loud, frames=24)).features
    np.testing.assert_array_equal(a[0], b[0])  # far from the burst: the very same numbers
    near, hit = np.abs(a[1] - b[1]).max(), np.abs(a[2] - b[2]).max()
    assert hit > 0 and hit > 10 * near  # AAC may smear a little of it into the row before


def test_features_are_deterministic_across_extractor_instances(audio, tmp_path):
    path = sound_video(tmp_path / "v.mp4", tone(2.0))
    again = get_extractor("audio")(settings())
    np.testing.assert_array_equal(extract(audio, path).features, extract(again, path).features)


def test_a_video_without_sound_gets_zero_rows(audio, tmp_path):
    record = extract(audio, sound_video(tmp_path / "mute.mp4", None))
    assert record.features.shape == (0, 128)
    assert record.timestamp.shape == (0,) and record.frame_index.shape == (0,)


def test_the_audio_extractor_needs_no_video_frame(audio):
    source_info = ExtractSettings()  # any settings: the plan holds no frame for sound
    assert get_extractor("audio")(source_info).row_frames(None, np.arange(5.0)).size == 0
    with pytest.raises(TypeError, match="reads the file's sound track"):
        audio.session(None, np.arange(5.0))


def test_spec_says_what_changes_the_numbers(audio):
    spec = audio.spec()
    assert spec["extractor"] == "audio" and spec["version"] == AudioExtractor.version
    assert spec["weights"] == {"kind": "random-init", "seed": 0}
    assert spec["options"]["resample"]["rate"] == SAMPLE_RATE
    assert spec["options"]["model"] == "vggish"
    other_seed = get_extractor("audio")(settings(weights=WeightsSource(random_init=True, seed=1)))
    other_batch = get_extractor("audio")(settings(batch_size=8))
    fingerprints = {audio.fingerprint, other_seed.fingerprint, other_batch.fingerprint}
    assert len(fingerprints) == 3
    # Frame sampling is not the sound's business.
    assert get_extractor("audio")(settings(frames=5)).fingerprint == audio.fingerprint


def test_random_init_never_downloads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    extractor = get_extractor("audio")(settings())
    extractor.load()
    assert sum(p.numel() for p in extractor.model.parameters()) == 72_141_184  # VGGish


def test_weights_dir_loads_a_vggish_state_dict(audio, tmp_path):
    path = tmp_path / "vggish-10086976.pth"
    torch.save(audio.model.state_dict(), path)  # the layout torchvggish's release file has
    extractor = get_extractor("audio")(settings(weights=WeightsSource(weights_dir=tmp_path)))
    assert extractor.spec()["weights"] == {
        "kind": "file",
        "name": "vggish-10086976.pth",
        "sha256": sha256_file(path),
    }
    video = sound_video(tmp_path / "v.mp4", tone(2.0))
    np.testing.assert_array_equal(
        extract(extractor, video).features, extract(audio, video).features
    )


def test_weights_dir_refuses_another_model(tmp_path):
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "vggish-10086976.pth")
    extractor = get_extractor("audio")(settings(weights=WeightsSource(weights_dir=tmp_path)))
    with pytest.raises(WeightsUnavailable, match=r"not a VGGish checkpoint: \d+ missing"):
        extractor.load()


def test_missing_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HARMCACHE_OFFLINE", "1")
    extractor = get_extractor("audio")(settings(weights=WeightsSource(weights_dir=tmp_path)))
    with pytest.raises(WeightsUnavailable, match=r"vggish-10086976\.pth is not in .*--random-init"):
        extractor.load()
