"""What a known video's bank entry holds, so that the copies uploads make of it are found.

vPDQ hashes a known video one frame a second and matches a copy hashed the same way. The
copy's sampled instants then fall wherever its own clock puts them: after a trim, a change of
frame rate or an embedding, a copy's frame can be half a second from the nearest known frame,
and on moving footage that is 40 to 100 bits, past `pdq.MATCH_DISTANCE`. A flip, a crop or
black bars move every frame's hash by about 100 bits. So the entry of a known video holds:

- **every frame where the picture moved.** Every decoded frame is hashed; it is kept when it
  is the first of its second (counted from the video's first frame, so each second has one, as
  the rule counts seconds) or is more than `KEEP_BITS` from the last one kept. Any copy's
  frame is then close to a kept one wherever it was sampled; a slow pan keeps a few frames a
  second, fast footage up to every frame, a still scene one a second.
- **the mirror** (`pdq.DIHEDRAL`'s `flip_y`, from the same DCT as the frame's own hash, so
  free) of each kept frame: a horizontally flipped copy.
- **the centre crops** of `pdq.CROPS` of each kept frame: a copy cropped in from every side.

Each frame is hashed inside its black borders (`pdq.content`), on both sides, for letterboxed
and pillarboxed copies. The query is hashed as vPDQ hashes it, one frame a second: uploads are
many and a known video is hashed once, so the density and the variants are paid for on the
bank's side. Matching (match.py) takes each variant as a whole: a flipped copy matches the
mirror's frames, a cropped copy one crop's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harmcache.known import pdq

KEEP_BITS = 16
"""A decoded frame joins the entry when its hash is more than this many bits from the last
frame kept (half of `pdq.MATCH_DISTANCE`: a copy's frame between two kept ones is close to one
of them)."""
MIRROR = pdq.DIHEDRAL.index("flip_y")
CROP_VARIANTS = tuple(pdq.VARIANTS.index(f"crop_{round(100 * c)}") for c in pdq.CROPS)
KNOWN_VARIANTS = (0, MIRROR, *CROP_VARIANTS)
"""The variants of each kept frame, in the order an entry holds them."""


def known_video(path: str | Path, *, short_side: int | None = pdq.DECODE_SHORT_SIDE):
    """A known video's entry frames: (hashes (F, 32) uint8, quality (F,), times (F,), variant
    (F,) uint8), for each frame kept (module docstring) one row per `KNOWN_VARIANTS`, by
    variant then time. Decoded upright at the extraction's decode size, chunk by chunk.
    Raises `VideoError` for a file that cannot be read."""
    from harmcache.video.decode import VideoSource

    kept_hashes: list[np.ndarray] = []
    kept_quality: list[int] = []
    kept_times: list[float] = []
    last: np.ndarray | None = None
    last_second = -1
    with VideoSource(path) as source:
        times = np.asarray(source.times, dtype=np.float64)
        wanted = np.arange(len(times), dtype=np.int64)
        seconds = np.floor(times - (times[0] if len(times) else 0.0) + 1e-9).astype(np.int64)
        for chunk in source.plan(wanted):
            decoded = source.read_chunk(chunk, {short_side: wanted})[short_side]
            hashed = [pdq.dihedral_with_quality(frame) for frame in decoded.frames]
            kept = []
            for position, (index, (turned, quality)) in enumerate(zip(decoded.indices, hashed)):
                second = int(seconds[index])
                moved = last is None or pdq.hamming(turned[:1], last[None])[0, 0] > KEEP_BITS
                if not moved and second == last_second:
                    continue
                last, last_second = turned[0], second
                kept.append(position)
                kept_quality.append(quality)
                kept_times.append(float(times[index]))
            for position in kept:
                own_and_mirror = hashed[position][0][[0, MIRROR]]
                cropped = pdq.crop_hashes(decoded.frames[position])
                kept_hashes.append(np.concatenate([own_and_mirror, cropped]))
    n, k = len(kept_times), len(KNOWN_VARIANTS)
    if n == 0:
        empty = np.zeros((0, pdq.HASH_BYTES), dtype=np.uint8)
        return empty, np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.uint8)
    hashes = np.stack(kept_hashes).transpose(1, 0, 2).reshape(n * k, pdq.HASH_BYTES)
    quality = np.tile(np.asarray(kept_quality, dtype=np.int64), k)
    at = np.tile(np.asarray(kept_times, dtype=np.float64), k)
    variant = np.repeat(np.asarray(KNOWN_VARIANTS, dtype=np.uint8), n)
    return np.ascontiguousarray(hashes), quality, at, variant
