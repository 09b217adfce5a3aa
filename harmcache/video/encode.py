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
) -> Path:
    """Encode (N, H, W, 3) uint8 RGB frames. H and W must be even for yuv420p codecs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pix_fmt, options = LOSSLESS.get(codec, ("yuv420p", {}))
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = pix_fmt
        stream.options = options
        for frame in frames:
            image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
