"""Real media for the known-content tests: pictures PDQ hashes at quality 100, videos made of
one-second scenes of them (so each 1 fps sample lands inside a known scene), re-encodings
with the ffmpeg CLI, and hash banks filled with synthetic hashes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from harmcache.known.entries import Entry
from harmcache.video.encode import write_video
from tests.media_corpus import ffmpeg, need_ffmpeg

FPS = 8
"""Frame rate of the test videos: each scene is FPS identical frames."""


def picture(seed: int, h: int = 96, w: int = 128) -> np.ndarray:
    """A smooth seeded RGB picture (coarse noise, bicubic-enlarged); distinct seeds give
    unrelated PDQ hashes (about 128 bits apart)."""
    coarse = np.random.default_rng(seed).integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def scene_video(path: Path, seeds: list[int], *, h: int = 96, w: int = 128) -> Path:
    """A lossless video showing `picture(seed)` for one second per seed, in order."""
    frames = np.stack([picture(s, h, w) for s in seeds for _ in range(FPS)])
    return write_video(path, frames, fps=FPS)


def reencoded(src: Path, dst: Path, *, size: str = "200:150", crf: int = 30) -> Path:
    """`src` rescaled and re-encoded lossy (H.264, yuv420p): an upload's copy of it."""
    need_ffmpeg()
    ffmpeg("-i", src, "-vf", f"scale={size}", "-c:v", "libx264", "-crf", crf,
           "-pix_fmt", "yuv420p", dst)  # fmt: skip
    return dst


def save_picture(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    return path


def random_hashes(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32), dtype=np.uint8)


def flipped(hashes: np.ndarray, bits: int, seed: int = 0) -> np.ndarray:
    """`hashes` with `bits` distinct bits of each row flipped: exactly that far from them."""
    rng = np.random.default_rng(seed)
    out = np.unpackbits(hashes, axis=1)
    for row in out:
        row[rng.choice(256, bits, replace=False)] ^= 1
    return np.packbits(out, axis=1)


def entry(entry_id: str, hashes: np.ndarray, *, label: str = "known", quality=None) -> Entry:
    """A video entry of `hashes`, one a second from 0."""
    n = len(hashes)
    quality = np.full(n, 100) if quality is None else quality
    return Entry(entry_id, label, f"test:{entry_id}", hashes, quality, np.arange(n, dtype=float))
