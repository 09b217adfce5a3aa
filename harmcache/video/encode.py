"""Write small videos with PyAV: the demo set and the test suite's ground-truth clips."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# Lossless choices keep decoded frames equal to the frames written (tests compare them).
LOSSLESS = {"libx264rgb": ("rgb24", {"crf": "0", "preset": "ultrafast"}), "ffv1": ("bgr0", {})}


def write_video(
    path: str | Path,
    frames: np.ndarray,
    *,
    fps: int = 8,
    codec: str = "libx264rgb",
    audio: np.ndarray | None = None,
    sample_rate: int = 44100,
) -> Path:
    """Encode (N, H, W, 3) uint8 RGB frames. H and W must be even for yuv420p codecs.

    `audio`: a sound track to add, float samples in [-1, 1] at `sample_rate`, (S,) for mono or
    (C, S) for C channels; encoded as AAC, as most real videos carry it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pix_fmt, options = LOSSLESS.get(codec, ("yuv420p", {}))
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = pix_fmt
        stream.options = options
        if audio is not None:
            for packet in encode_sound(container, audio, sample_rate):
                container.mux(packet)
        for frame in frames:
            image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


AUDIO_LAYOUTS = {1: "mono", 2: "stereo"}
AAC_FRAME = 1024
"""Samples per AAC frame."""


def encode_sound(container, audio: np.ndarray, sample_rate: int, codec: str = "aac"):
    """Add an audio stream to an open output `container` and yield its encoded packets."""
    sound = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    if sound.shape[0] not in AUDIO_LAYOUTS:
        raise ValueError(f"audio must be (S,) or (C, S) with C 1 or 2, got {sound.shape}")
    layout = AUDIO_LAYOUTS[sound.shape[0]]
    stream = container.add_stream(codec, rate=sample_rate)
    stream.layout = layout
    for start in range(0, sound.shape[1], AAC_FRAME):
        part = np.ascontiguousarray(sound[:, start : start + AAC_FRAME])
        frame = av.AudioFrame.from_ndarray(part, format="fltp", layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = start
        yield from stream.encode(frame)
    yield from stream.encode()
