"""PDQ perceptual hashes: the one place frames become hashes, hashes become hex, and two sets of
hashes are compared.

A PDQ hash is 256 bits (32 bytes here, most significant bit first, so `to_hex` gives the 64
hex characters ThreatExchange and vPDQ write) with a quality from 0 to 100. Two frames match
when their hashes are at most `MATCH_DISTANCE` bits apart; a frame whose quality is below
`MIN_QUALITY` (flat, blurred, near-uniform) says too little to match on.

The hasher is Meta's PDQ algorithm as `pdq_algorithm` computes it: the reference's steps,
with its full-frame tent filter reduced to the 64 x 64 points PDQ keeps, fed a decoded RGB
frame. Its hashes and qualities equal those of the `pdqhash` package (Cython bindings to
Meta's own C++, the code vPDQ hashes its frames with) bit for bit on real footage, at about a
fifth of the time: 0.5 ms for a 640x360 frame (the extraction's decode size) against pdqhash's
2.5 to 3.5 ms, which was a quarter of the time of decoding that frame at 1 fps
(bench/README.md, "PDQ cost"). `vpdq` does not fit the single decode pass at all: it decodes
the file itself with its own FFmpeg build and hands back only its hashes, so it would decode
every video a second time (about 95 ms per hashed second of a 720p clip, one thread), and it
needs FFmpeg's development files to build. The dihedral hashes cost the same as one hash, as
PDQ derives them from the one DCT. Shrinking a frame below the decode size before hashing
would be cheaper but moves the hash 20 to 30 bits from the full-size frame's, against about 10
at the decode size, so frames are hashed as given.

Every frame is hashed inside its black borders (`content`): a letterboxed or pillarboxed copy
(black bars added to fit another shape) hashes as the picture without them, 0 to 10 bits from
it, where the bars alone move the hash about 100 bits. A frame without such bars is hashed as
it is: Meta's PDQ of the frame.

Videos are hashed at `fps` frames a second on the project's own time axis (the frame on
screen at the centre of each 1/fps-second segment, as `harmcache extract --fps` samples),
decoded upright by the project's decoders at the extraction's decode size, so a file hashed
here gives exactly the rows of the pdq family of a default extraction. A still image is one
frame at time 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harmcache.known import pdq_algorithm as algorithm

HASH_BYTES = 32
"""Bytes in one PDQ hash (256 bits)."""
HASH_BITS = 8 * HASH_BYTES
MATCH_DISTANCE = 31
"""Two frames match when their hashes differ in at most this many bits (vPDQ's threshold)."""
MIN_QUALITY = 50
"""Frames of lower quality are left out of matching (vPDQ's threshold)."""
DECODE_SHORT_SIDE = 360
"""The short side `hash_video` decodes at by default: the extraction's default decode size
(`ExtractSettings.decode_short_side`; a test keeps the two equal)."""
DIHEDRAL = (
    "original",
    "rot90",
    "rot180",
    "rot270",
    "flip_x",
    "flip_y",
    "flip_plus1",
    "flip_minus1",
)
"""The order of `dihedral`'s eight hashes (PDQ's own). Each is close to the hash of the frame
turned or mirrored so: `rot90` counter-clockwise (`np.rot90(rgb)`), `rot180`, `rot270`;
`flip_x` upside down (`rgb[::-1]`), `flip_y` left to right (`rgb[:, ::-1]`), `flip_plus1` the
transpose, `flip_minus1` the transpose of `rot180`. Close, not equal: PDQ's box filter does not
commute with every turn, so a variant can be some bits (well within `MATCH_DISTANCE` on a
picture) from the hash of the turned pixels."""
CROPS = (0.95, 0.9, 0.85, 0.7)
"""The centre crops a known video's entry also holds (harmcache/known/variants.py): the middle
95, 90, 85 and 70 % of the picture's width and height. PDQ moves about 45 bits when 5 % more is
cut off, so each crop stands for the copies cropped within about 2.5 % of it."""
CENTRE = 0.7
"""A query's frame is also hashed by its middle 70 % (`FrameHashes.centre`), which leaves out
the outer band where corner marks, logos and channel badges sit; it is matched with the
entries' `crop_70` frames."""
VARIANTS = (*DIHEDRAL, *(f"crop_{round(100 * c)}" for c in CROPS))
"""What an entry's frame can hash (`Entry.variant` is an index here): the eight dihedral
variants, then the centre crops of `CROPS`."""
CENTRE_VARIANT = VARIANTS.index(f"crop_{round(100 * CENTRE)}")
BORDER_LUMA = 24
"""A row or column of a frame is black border when nearly all its pixels (`BORDER_SHARE`) are
at most this bright in every channel (FFmpeg's cropdetect default limit, of 255)."""
BORDER_SHARE = 0.98
MIN_CONTENT = 0.25
"""Borders are stripped only when at least this share of each side is left: a dark frame is
hashed whole (its quality then says it is too flat to match on)."""

QUALITY_EXTRA = "quality"
"""The pdq family's extras array of each row's quality, (L,) int64
(harmcache/extractors/pdq.py writes the family; its docstring gives the layout)."""
DIHEDRAL_EXTRA = "dihedral"
"""The pdq family's extras array of a still image's dihedral hashes, (K, 8, 32) uint8: K = 1
for an image, 0 for a video."""

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
_BLOCK_BYTES = 32 << 20
"""`hamming` compares in blocks of rows whose XOR stays within this many bytes."""


@dataclass(frozen=True)
class FrameHashes:
    """The PDQ hashes of one video's sampled frames, in time order."""

    times: np.ndarray
    """(N,) float64: each hashed frame's presentation time, seconds."""
    hashes: np.ndarray
    """(N, 32) uint8."""
    quality: np.ndarray
    """(N,) int64, 0 to 100."""
    centre: np.ndarray | None = None
    """(N, 32) uint8: the hash of each frame's middle `CENTRE` (`hash_with_centre`), matched with
    entries' `CENTRE_VARIANT` frames; None where not hashed (a cache from before it)."""

    def __len__(self) -> int:
        return len(self.times)


# Hashing ----------------------------------------------------------------------------------------


def hash_frame(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """One (H, W, 3) uint8 RGB frame → the (32,) uint8 hash and the quality of its `content`
    (the frame inside its black borders)."""
    block, quality = algorithm.dct_block(content(_checked(rgb)))
    return algorithm.hash_bits(block), quality


def hash_frames(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W, 3) uint8 RGB frames → ((N, 32) uint8 hashes, (N,) int64 qualities)."""
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"frames are (N, H, W, 3) uint8 RGB, got shape {frames.shape}")
    hashes = np.zeros((len(frames), HASH_BYTES), dtype=np.uint8)
    quality = np.zeros(len(frames), dtype=np.int64)
    for i, frame in enumerate(frames):
        hashes[i], quality[i] = hash_frame(frame)
    return hashes, quality


def dihedral(rgb: np.ndarray) -> np.ndarray:
    """(8, 32) uint8: the hashes of the frame and of its seven turns and mirrors, in `DIHEDRAL`
    order (the frame's own hash first, equal to `hash_frame`'s), inside its borders."""
    return dihedral_with_quality(rgb)[0]


def dihedral_with_quality(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """`dihedral` and the frame's quality, from one pass."""
    block, quality = algorithm.dct_block(content(_checked(rgb)))
    return np.stack([algorithm.hash_bits(b) for b in algorithm.dihedral(block)]), quality


def content(rgb: np.ndarray) -> np.ndarray:
    """The frame inside its black borders (a view; the frame itself when it has none, or when
    stripping them would leave less than `MIN_CONTENT` of a side)."""
    rgb = _checked(rgb)
    h, w = rgb.shape[:2]
    edges = (rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1])
    if all((e.max(axis=1) <= BORDER_LUMA).mean() < BORDER_SHARE for e in edges):
        return rgb  # no edge is dark enough to be a bar: the common case, checked cheaply
    step = 2 if min(h, w) >= 64 else 1  # every other pixel says as much about a bar, for less
    dark = rgb[::step, ::step].max(axis=2) <= BORDER_LUMA
    rows = np.flatnonzero(dark.mean(axis=1) < BORDER_SHARE)
    cols = np.flatnonzero(dark.mean(axis=0) < BORDER_SHARE)
    if len(rows) == 0 or len(cols) == 0:
        return rgb
    top, bottom = rows[0] * step, min(h, (rows[-1] + 1) * step)
    left, right = cols[0] * step, min(w, (cols[-1] + 1) * step)
    if bottom - top < MIN_CONTENT * h or right - left < MIN_CONTENT * w:
        return rgb
    return rgb[top:bottom, left:right]


def centre_crop(rgb: np.ndarray, share: float) -> np.ndarray:
    """The middle `share` of the frame's height and width (a view)."""
    h, w = rgb.shape[:2]
    ch, cw = max(1, round(h * share)), max(1, round(w * share))
    top, left = (h - ch) // 2, (w - cw) // 2
    return rgb[top : top + ch, left : left + cw]


def hash_with_centre(rgb: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """A query frame's hash and quality (`hash_frame`) and the hash of its middle `CENTRE`
    (matched with known frames' `CENTRE_VARIANT`, for a copy with a mark in its outer band),
    the borders found once for both."""
    inside = content(rgb)
    block, quality = algorithm.dct_block(inside)
    return algorithm.hash_bits(block), quality, _hash_of(centre_crop(inside, CENTRE))


def crop_hashes(rgb: np.ndarray) -> np.ndarray:
    """(len(CROPS), 32) uint8: the hashes of the frame's centre crops (`CROPS`), cut from the
    frame inside its borders."""
    inside = content(rgb)
    return np.stack([_hash_of(centre_crop(inside, share)) for share in CROPS])


def _hash_of(rgb: np.ndarray) -> np.ndarray:
    return algorithm.hash_bits(algorithm.dct_block(rgb)[0])


def _checked(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"a frame is (H, W, 3) uint8 RGB, got shape {rgb.shape} dtype {rgb.dtype}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"a frame has at least one pixel, got shape {rgb.shape}")
    return rgb


# Forms ------------------------------------------------------------------------------------------


def to_hex(h: np.ndarray) -> str:
    """A (32,) uint8 hash as 64 lowercase hex characters."""
    h = np.asarray(h)
    if h.shape != (HASH_BYTES,) or h.dtype != np.uint8:
        raise ValueError(f"a PDQ hash is ({HASH_BYTES},) uint8, got shape {h.shape} {h.dtype}")
    return h.tobytes().hex()


def from_hex(s: str) -> np.ndarray:
    """64 hex characters (either case) → the (32,) uint8 hash."""
    if not isinstance(s, str) or len(s) != 2 * HASH_BYTES:
        raise ValueError(f"a PDQ hash is {2 * HASH_BYTES} hex characters, got {s!r}")
    try:
        raw = bytes.fromhex(s)
    except ValueError:
        raise ValueError(f"a PDQ hash is {2 * HASH_BYTES} hex characters, got {s!r}") from None
    return np.frombuffer(raw, dtype=np.uint8).copy()


def hex_rows(hashes: np.ndarray) -> list[str]:
    """(N, 32) uint8 hashes → N hex strings."""
    hashes = _rows(hashes, "hashes")
    return [bytes(row).hex() for row in hashes]


def from_hex_rows(rows: list[str]) -> np.ndarray:
    """N hex strings → (N, 32) uint8 hashes."""
    out = np.zeros((len(rows), HASH_BYTES), dtype=np.uint8)
    for i, s in enumerate(rows):
        out[i] = from_hex(s)
    return out


def to_bits(hashes: np.ndarray) -> np.ndarray:
    """(N, 32) uint8 hashes → (N, 256) uint8 bits, most significant first."""
    return np.unpackbits(_rows(hashes, "hashes"), axis=1)


def from_bits(bits: np.ndarray) -> np.ndarray:
    """(N, 256) bits (any numeric dtype, 0 or 1) → (N, 32) uint8 hashes."""
    bits = np.asarray(bits)
    if bits.ndim != 2 or bits.shape[1] != HASH_BITS:
        raise ValueError(f"PDQ bits are (N, {HASH_BITS}), got shape {bits.shape}")
    if not np.isin(bits, (0, 1)).all():
        raise ValueError("PDQ bits are 0 or 1")
    return np.packbits(bits.astype(np.uint8), axis=1)


def _rows(hashes: np.ndarray, what: str) -> np.ndarray:
    hashes = np.asarray(hashes)
    if hashes.ndim != 2 or hashes.shape[1] != HASH_BYTES or hashes.dtype != np.uint8:
        raise ValueError(
            f"{what} are (N, {HASH_BYTES}) uint8, got shape {hashes.shape} dtype {hashes.dtype}"
        )
    return hashes


# Comparing --------------------------------------------------------------------------------------


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) int64 bit distances between (N, 32) and (M, 32) uint8 hashes; memory stays
    bounded by comparing a block of `a`'s rows at a time."""
    a, b = _rows(a, "a"), _rows(b, "b")
    out = np.zeros((len(a), len(b)), dtype=np.int64)
    step = max(1, _BLOCK_BYTES // max(1, len(b) * HASH_BYTES))
    for start in range(0, len(a), step):
        xor = np.bitwise_xor(a[start : start + step, None, :], b[None, :, :])
        out[start : start + step] = _POPCOUNT[xor].sum(axis=2, dtype=np.int64)
    return out


# Videos -----------------------------------------------------------------------------------------


def hash_video(
    path: str | Path, fps: float = 1.0, *, short_side: int | None = DECODE_SHORT_SIDE
) -> FrameHashes:
    """The PDQ hashes of a video's frames at `fps` a second, or of a still image's one frame at
    time 0, decoded by the project's decoders (display rotation applied) with the short side
    at most `short_side` (None: full size, as vPDQ hashes). The video is decoded chunk by
    chunk, so a long one is never held at once. Raises `VideoError` for a file that cannot be
    read, as extraction records it."""
    from harmcache.video.decode import VideoSource
    from harmcache.video.image import IMAGE_BACKEND
    from harmcache.video.sampling import fps_indices

    if not fps > 0:
        raise ValueError(f"fps must be above 0, got {fps}")
    with VideoSource(path) as source:
        times = np.asarray(source.times, dtype=np.float64)
        if source.info.backend == IMAGE_BACKEND:
            rows = np.zeros(1, dtype=np.int64)
        else:
            rows = fps_indices(times, fps)
        wanted = np.unique(rows)
        hashes = np.zeros((len(wanted), HASH_BYTES), dtype=np.uint8)
        centre = np.zeros((len(wanted), HASH_BYTES), dtype=np.uint8)
        quality = np.zeros(len(wanted), dtype=np.int64)
        for chunk in source.plan(wanted):
            decoded = source.read_chunk(chunk, {short_side: wanted})[short_side]
            for at, frame in zip(np.searchsorted(wanted, decoded.indices), decoded.frames):
                hashes[at], quality[at], centre[at] = hash_with_centre(frame)
    at = np.searchsorted(wanted, rows)  # segments sharing a frame share its hash
    return FrameHashes(times[rows], hashes[at], quality[at], centre[at])
