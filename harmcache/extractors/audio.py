"""VGGish audio embeddings (torchvggish), one per 0.96 s of the video's sound.

The sound track is decoded once, on its own (`harmcache.video.audio`: PyAV, resampled to 16 kHz
mono, any channel layout), in a guarded child process (`harmcache.video.audio_child`) so that a
decoder crash fails this file's audio alone; no video frame is decoded for it. The log-mel
frontend is torchvggish's own (25 ms windows every 10 ms, 64 mel bands over 125-7500 Hz,
log(mel + 0.01)), and each example is 96 frames (0.96 s) of it, the examples laid end to end
from the video's first frame: example k covers [0.96 k, 0.96 (k+1)) seconds of the video's time
axis, its row's timestamp is the centre (0.96 k + 0.48) and its frame_index the frame on screen
then. A trailing partial example is kept when it holds at least half an example of sound (or is
the video's only one) and is padded with silence; VGGish itself drops it. The row is the 128-d
embedding before AudioSet's PCA and quantisation (a lossy post-process heads do not need).

A video without an audio stream gets zero rows (committed, not a failure; stage two masks the
modality). A stream that cannot be decoded, or whose decoder crashed its process, fails this
family alone with reason `audio_error`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from harmcache.errors import WeightsUnavailable
from harmcache.extractors.base import Extractor, register_extractor
from harmcache.types import FeatureRecord, VideoInfo
from harmcache.video.audio import RESAMPLER, SAMPLE_RATE
from harmcache.video.audio_child import read_audio_isolated
from harmcache.video.sampling import frames_at

EXAMPLE_SECONDS = 0.96
EXAMPLE_SAMPLES = round(EXAMPLE_SECONDS * SAMPLE_RATE)  # 15360: 96 hops of 160 samples
STFT_WINDOW = 400
STFT_HOP = 160
OVERHANG = STFT_WINDOW - STFT_HOP
"""Samples past an example's end that its last 25 ms window reads (240)."""
WEIGHTS_URL = (
    "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"
)


def example_count(samples: int) -> int:
    """Examples covering `samples` samples: the whole ones, plus a partial one holding at least
    half an example (or any sound at all, when it would be the only one)."""
    whole, rest = divmod(samples, EXAMPLE_SAMPLES)
    return whole + int(rest >= EXAMPLE_SAMPLES // 2 or (whole == 0 and rest > 0))


def log_mel_examples(samples: np.ndarray, count: int) -> np.ndarray:
    """(count, 96, 64) float32 log-mel examples from 16 kHz samples, the first example starting
    at sample 0; silence pads whatever the examples and their last window need beyond."""
    from torchvggish.vggish_input import waveform_to_examples

    need = count * EXAMPLE_SAMPLES + OVERHANG
    padded = np.zeros(need, dtype=np.float64)
    padded[: min(len(samples), need)] = samples[:need]
    examples = waveform_to_examples(padded, SAMPLE_RATE, return_tensor=False)
    if len(examples) != count:  # the frontend's framing is ours to match: never silently off
        raise RuntimeError(f"torchvggish framed {len(examples)} examples, expected {count}")
    return np.asarray(examples, dtype=np.float32)


def segments(blocks: Iterable[np.ndarray], per_segment: int) -> Iterator[np.ndarray]:
    """Log-mel examples `per_segment` at a time (the last segment fewer) from a stream of
    samples in blocks of any size. Each segment's log-mel is computed from the same samples
    however the blocks were cut, so the rows are the same as from the whole track at once."""
    span = per_segment * EXAMPLE_SAMPLES
    held = np.zeros(0, dtype=np.float32)
    total = 0
    for block in blocks:
        held = np.concatenate([held, np.asarray(block, dtype=np.float32)])
        total += len(block)
        while len(held) >= span + OVERHANG:
            yield log_mel_examples(held, per_segment)
            held = held[span:]
    done = total - len(held)  # samples already covered by whole segments
    count = example_count(total) - done // EXAMPLE_SAMPLES
    if count > 0:
        yield log_mel_examples(held, count)


@register_extractor("audio")
class AudioExtractor(Extractor):
    """VGGish on the sound track: (examples, 128) float32 rows, one per 0.96 s; zero rows for a
    video without sound. Not in the default extractor set: ask for it with --extractors."""

    version = "1"
    dim = 128
    weight_files = ("vggish-10086976.pth",)
    option_fields: dict[str, str] = {}

    def options(self) -> dict[str, Any]:
        return {
            "model": "vggish",
            "embedding": "pre-pca",
            "resample": dict(RESAMPLER, library="pyav-swresample", channels="mean"),
            "example_seconds": EXAMPLE_SECONDS,
            "hop_seconds": EXAMPLE_SECONDS,
            "stft_window": STFT_WINDOW,
            "stft_hop": STFT_HOP,
            "mel_bins": 64,
            "mel_hz": [125, 7500],
            "log_offset": 0.01,
            "tail": "half-example, silence-padded",
            "origin": "first video frame",
        }

    def row_frames(self, info: VideoInfo, times: np.ndarray) -> np.ndarray:
        return np.zeros(0, dtype=np.int64)  # the sound is read on its own: no frame needed

    def build(self, weights_path: Path | None) -> Any:
        from torchvggish.torchvggish import VGG, make_layers

        # postprocess=False: the PCA step would download its parameters; base.load() seeded torch.
        model = VGG(make_layers(), postprocess=False)
        if weights_path is not None:
            import torch

            state = torch.load(weights_path, map_location="cpu", weights_only=True)
            missing, unexpected = model.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise WeightsUnavailable(
                    f"{weights_path} is not a VGGish checkpoint: {len(missing)} missing and "
                    f"{len(unexpected)} unexpected tensors (first: {(missing + unexpected)[0]})"
                )
        return model

    def compute_batch(self, frames: np.ndarray, first_row: int) -> tuple[np.ndarray, dict]:
        """`frames` here are (B, 96, 64) log-mel examples."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.settings.device)
        return self.model(x[:, None]).float().cpu().numpy(), {}

    def session(self, info: VideoInfo, times: np.ndarray | None = None):
        raise TypeError(
            "the audio extractor reads the file's sound track: use source_session(path, ...)"
        )

    def source_session(self, path: str | Path, info: VideoInfo, times: np.ndarray) -> AudioSession:
        """One video's sound through this extractor; it needs the file, not decoded frames."""
        return AudioSession(self, Path(path), info, np.asarray(times, dtype=np.float64))

    def extract_file(self, path: str | Path, info: VideoInfo, times: np.ndarray) -> FeatureRecord:
        """Features of one video's sound (benchmarks, tests)."""
        self.load()
        return self.source_session(path, info, times).finish()

    @classmethod
    def library_cache_paths(cls) -> list[Path]:
        import torch

        return [Path(torch.hub.get_dir()) / "checkpoints" / cls.weight_files[0]]

    @classmethod
    def download(cls, target_dir: Path) -> Path:
        import torch

        torch.hub.load_state_dict_from_url(WEIGHTS_URL, model_dir=str(target_dir), progress=False)
        return Path(target_dir) / cls.weight_files[0]


class AudioSession:
    """One video through the audio extractor: the session protocol of `ExtractionSession`, but
    the sound is decoded and embedded in `finish()`, a batch of examples at a time, so a long
    video's sound is never held at once. Batches are fixed-size runs of the video's own
    examples, as for the frame extractors."""

    peak_frames = 0

    def __init__(self, extractor: AudioExtractor, path: Path, info: VideoInfo, times: np.ndarray):
        self.extractor = extractor
        self.path = path
        self.info = info
        self.times = times

    def feed(self, chunk: Any, upto: int) -> None:
        """Decoded frames are not needed."""

    def finish(self) -> FeatureRecord:
        duration = self.info.duration  # the probe's, by the rule every family uses
        per_batch = max(1, self.extractor.settings.batch_size)
        samples = read_audio_isolated(
            self.path, end=duration if duration > 0 else None, block=per_batch * EXAMPLE_SAMPLES
        )
        parts = []
        with closing(samples):  # a model failure mid-track stops the decoder at once
            for examples in segments(samples, per_batch):
                first = sum(len(p) for p in parts)
                features, _ = self.extractor.run_batch(examples, first)
                parts.append(np.asarray(features, dtype=np.float32))
        dim = self.extractor.dim
        features = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
        stamps = (np.arange(len(features), dtype=np.float64) + 0.5) * EXAMPLE_SECONDS
        return FeatureRecord(
            np.ascontiguousarray(features, dtype=np.float32), frames_at(self.times, stamps), stamps
        )
