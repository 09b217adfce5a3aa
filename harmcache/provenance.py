"""The library versions that made a shard's numbers.

They are recorded beside the features, not hashed into the fingerprint: a patch release of
torch should not orphan a million cached videos, but a team must be able to see (and `train`
warns) when one family's videos were made under different versions.
"""

from __future__ import annotations

import functools
from importlib import metadata

PACKAGES = ("torch", "torchvision", "ultralytics", "clip-anytorch", "pytorchvideo", "decord", "av")


@functools.cache
def library_versions() -> dict[str, str]:
    """Installed versions of the packages that decode and compute features, and FFmpeg's."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    try:
        import av

        libavcodec = av.library_versions.get("libavcodec")
        out["ffmpeg-libavcodec"] = ".".join(map(str, libavcodec)) if libavcodec else "unknown"
    except ImportError:
        out["ffmpeg-libavcodec"] = "absent"
    return out
