"""Decode a video's sound track once: 16 kHz mono float32 samples on the video's own time axis.

Only the first audio stream's packets are demuxed and decoded (the picture is not touched);
PyAV's `AudioResampler` (FFmpeg's swresample) converts them to 16 kHz float in one pass over the
stream, and the channels are averaged to mono, as VGGish's own frontend does (swresample's
downmix would keep -3 dB of each channel instead: 0.71 (L + R) rather than (L + R) / 2).

Any channel layout, any number of channels. Two PyAV 18 defects crash the process (SIGSEGV or
a glibc abort) on some layouts, so neither is ever reached:

- `AudioFrame.planes` counts planes until a null pointer, which a planar frame of 8 or more
  channels does not have (FFmpeg keeps 8 plane pointers inline, and exactly one per channel
  beyond that, with no terminator): every 7.1 track, AAC, Opus, FLAC or PCM, crashed in
  `to_ndarray`. The resampler is asked for packed
  float (`flt`, one plane at any channel count) instead of planar (`fltp`), and the samples are
  de-interleaved here. The swresample output is the same numbers in another memory order, and
  the channel mean is taken in the same order as before, so mono, stereo and 5.1 features are
  bit-identical to the planar reading (tests/video/test_audio.py checks it).
- `AudioLayout` copies FFmpeg's channel layout shallowly and frees it when dropped, so a layout
  in a custom channel order (its channel map lives on the heap: QuickTime PCM 6.1 or 7.1 with
  side channels before the back ones) is freed twice once any frame of it is read. Such a
  stream's decoder is told, before it opens, to use an unspecified layout of the same channel
  count: the mean of all channels does not depend on which speaker each one was for.

Decoding runs in a guarded child process anyway (`harmcache.video.audio_child`), so a crash
this module does not know of costs one file's sound, not the run.

Sample `i` lies at `i / 16000` seconds after the first video frame: sound that starts later
than the picture is preceded by silence, sound before the first frame is dropped, and sound
after `end` (the end of the picture) is not read.

A file with no audio stream yields no samples: that is not an error. An audio stream that
cannot be opened or decoded (damaged packets, an unsupported codec) raises a `VideoError` with
reason class `audio_error`, so the video's picture features still count.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from harmcache.errors import VideoError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
"""Samples per second after resampling (VGGish's rate)."""
RESAMPLER = {"format": "fltp", "layout": None, "rate": SAMPLE_RATE}
"""The resampling the samples are defined by (the stream's own channels kept, then averaged);
part of the audio extractor's spec."""
PACKED = dict(RESAMPLER, format="flt")
"""What `av.AudioResampler` is actually asked for: the same samples as `RESAMPLER`, interleaved
(see the module docstring)."""


def has_audio(path: str | Path) -> bool:
    """Whether the file holds an audio stream (its packets are not read)."""
    import av

    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except av.error.FFmpegError:
        return False


def read_audio(
    path: str | Path, *, end: float | None = None, block: int = SAMPLE_RATE
) -> Iterator[np.ndarray]:
    """The file's sound as 16 kHz mono float32 samples on the video's time axis, in arrays of
    exactly `block` samples (the last one shorter); nothing when the file has no audio stream.

    `end`: seconds of the video's time axis after which nothing is read (None: the whole
    stream). Raises `VideoError('audio_error', ...)` when the stream cannot be decoded."""
    import av

    if block < 1:
        raise ValueError(f"an audio block holds at least 1 sample, got {block}")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise VideoError("audio_error", f"cannot open the file for its sound ({exc})") from None
    with container:
        if not container.streams.audio:
            return
        stream = container.streams.audio[0]
        limit = None if end is None else max(0, round(end * SAMPLE_RATE))
        blocks = _Blocks(block, limit)
        packets = 0
        try:
            _plain_layout(stream.codec_context)
            resampler = av.AudioResampler(**PACKED)
            for packet in container.demux(stream):
                packets += packet.size > 0
                for frame in packet.decode():
                    if blocks.lead is None:
                        blocks.lead = _lead(frame, stream, container)
                    for out in resampler.resample(frame):
                        yield from blocks.push(channel_mean(out))
                    if blocks.full:
                        break
                if blocks.full:
                    break
            else:
                for out in resampler.resample(None):
                    yield from blocks.push(channel_mean(out))
        except (av.error.FFmpegError, ValueError) as exc:
            # ValueError: PyAV refuses frames it cannot describe (an unknown channel layout).
            codec = stream.codec_context.name if stream.codec_context else "unknown"
            raise VideoError(
                "audio_error", f"audio stream ({codec}) could not be decoded: {exc}"
            ) from None
        if packets and blocks.decoded == 0:
            raise VideoError(
                "audio_error", f"no sound decoded from the audio stream's {packets} packet(s)"
            )
        yield from blocks.rest()


STANDARD_LAYOUT = re.compile(r"[\w.]+(\([\w-]+\))?")
"""How FFmpeg names a layout of its own table ("mono", "5.1(side)", "7.1.4"); an unspecified
order reads "8 channels", a custom one "8 channels (FL+FR+...)"."""


def _plain_layout(codec) -> None:
    """Give a decoder that is not open yet an unspecified channel layout, unless its layout is
    one of FFmpeg's standard ones (those are left exactly as they are)."""
    # `original` shares the decoder's channel map, if it has one: it must stay alive until the
    # decoder no longer points at that map, and then frees it, once.
    original = codec.layout
    if not STANDARD_LAYOUT.fullmatch(original.name):
        codec.layout = f"{original.nb_channels} channels"
    del original


def channel_mean(frame) -> np.ndarray:
    """The mean over the channels of a packed float frame, as float32, summed in channel order:
    the same numbers `to_ndarray().mean(axis=0)` gives for the planar frame."""
    channels = frame.layout.nb_channels
    interleaved = frame.to_ndarray().reshape(frame.samples, channels)
    return np.ascontiguousarray(interleaved.T).mean(axis=0)


def _lead(frame, stream, container) -> int:
    """Samples between the first video frame and the first sound sample (negative: the sound
    starts earlier)."""
    start = frame.time
    if start is None:
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
    origin = 0.0
    if container.streams.video:
        video = container.streams.video[0]
        if video.start_time is not None and video.time_base is not None:
            origin = float(video.start_time * video.time_base)
    return round((start - origin) * SAMPLE_RATE)


class _Blocks:
    """Samples re-cut into fixed-size blocks, shifted onto the video's time axis and cut at
    `limit` samples: the blocks do not depend on how the decoder happened to size its frames."""

    def __init__(self, size: int, limit: int | None):
        self.size = size
        self.limit = limit
        self.lead: int | None = None
        self.parts: list[np.ndarray] = []
        self.held = 0
        self.emitted = 0
        self.decoded = 0

    @property
    def full(self) -> bool:
        return self.limit is not None and self.emitted + self.held >= self.limit

    def push(self, samples: np.ndarray) -> Iterator[np.ndarray]:
        samples = np.asarray(samples, dtype=np.float32)
        self.decoded += len(samples)
        if self.lead and self.lead > 0:  # the sound starts after the picture: silence first
            samples = np.concatenate([np.zeros(self.lead, np.float32), samples])
            self.lead = 0
        elif self.lead and self.lead < 0:  # sound before the first frame is dropped
            cut = min(-self.lead, len(samples))
            samples = samples[cut:]
            self.lead += cut
        if self.limit is not None:
            samples = samples[: max(0, self.limit - self.emitted - self.held)]
        if len(samples):
            self.parts.append(samples)
            self.held += len(samples)
        while self.held >= self.size:
            joined = np.concatenate(self.parts)
            yield joined[: self.size]
            rest = joined[self.size :]
            self.parts = [rest] if len(rest) else []
            self.held = len(rest)
            self.emitted += self.size

    def rest(self) -> Iterator[np.ndarray]:
        if self.held:
            yield np.concatenate(self.parts)
            self.emitted += self.held
            self.parts, self.held = [], 0
