"""Meta's PDQ perceptual hash, computed with two matrix products instead of full-frame filters.

PDQ (Meta's reference C++, pdq/cpp/hashing/pdqhashing.cpp in ThreatExchange) turns a frame
into 256 bits in five steps: luma (0.299 R + 0.587 G + 0.114 B, in single precision); a tent
filter (two passes of a box filter along the rows and two along the columns, each box
`(n + 127) // 128` wide, averaging over the part of the window inside the frame); the filtered
frame sampled at 64 x 64 points, the centre of each 1/64 of a side; a 16 x 16 block of the
sampled grid's DCT (frequencies 1 to 16, the constant term left out); and one bit per
coefficient, set when it is above the median. The quality is the sum of the sampled grid's
quantized gradients, / 90, at most 100.

Every step before the DCT is linear and acts on rows and columns apart, so the 64 x 64 grid is
`R_rows @ luma @ R_cols.T`, where `R` (64 x n) is the two box passes' matrix restricted to the
64 sampled rows (`sampler`, built once per frame size). The reference filters every pixel of
the frame four times and keeps 4,096 of them; this computes only those. Measured on real
footage (tests/known/test_pdq.py, bench/pdq_cost.py): the same hashes and qualities as the
`pdqhash` package (Meta's C++ compiled), bit for bit, about five times faster at 640 x 360. A
flat frame (quality 0, never matched) is the exception: its coefficients are rounding noise
either way, so its bits are arbitrary in both.

The seven turns and mirrors of a frame (`dihedral`) are sign flips and transposes of its DCT
block, as in the reference, so all eight cost one hash.
"""

from __future__ import annotations

import functools

import numpy as np

GRID = 64
"""The sampled grid's side."""
BITS_SIDE = 16
MIN_SIDE = 5
"""A frame narrower or lower than this hashes to zeros, of quality 0 (the reference's limit)."""
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _box_matrix(n: int, width: int) -> np.ndarray:
    """(n, n): one box-filter pass over n samples, as the reference's `box1DFloat` runs it:
    output o averages inputs o - (width - half) to o + half - 1, cut to the vector's ends."""
    half = (width + 2) // 2
    out = np.arange(n)
    lo = np.maximum(0, out - (width - half))
    hi = np.minimum(n - 1, out + half - 1)
    cols = np.arange(n)[None, :]
    inside = (cols >= lo[:, None]) & (cols <= hi[:, None])
    return inside / (hi - lo + 1)[:, None]


@functools.lru_cache(maxsize=32)
def sampler(n: int) -> np.ndarray:
    """(64, n) float32: two box passes along a side of n pixels, then the 64 sampled points."""
    box = _box_matrix(n, (n + 2 * GRID - 1) // (2 * GRID))
    picks = ((np.arange(GRID) + 0.5) * n / GRID).astype(np.int64)
    return np.ascontiguousarray((box @ box)[picks].astype(np.float32))


def _dct_matrix() -> np.ndarray:
    i = np.arange(BITS_SIDE)[:, None]
    j = np.arange(GRID)[None, :]
    scale = np.sqrt(2.0 / GRID)
    return (scale * np.cos(np.pi / 2.0 / GRID * (i + 1) * (2 * j + 1))).astype(np.float32)


DCT = _dct_matrix()
"""(16, 64): the DCT rows of frequencies 1 to 16."""


def dct_block(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """An (H, W, 3) uint8 RGB frame → its (16, 16) float32 DCT block and its quality; None
    for a frame below `MIN_SIDE`."""
    h, w = rgb.shape[:2]
    if h < MIN_SIDE or w < MIN_SIDE:
        return None, 0
    luma = (rgb.reshape(-1, 3).astype(np.float32) @ LUMA).reshape(h, w)
    grid = sampler(h) @ luma @ sampler(w).T
    return DCT @ grid @ DCT.T, _quality(grid)


def _quality(grid: np.ndarray) -> int:
    # The reference truncates each scaled difference to an int before summing.
    down = np.trunc((grid[:-1] - grid[1:]) * 100 / 255)
    across = np.trunc((grid[:, :-1] - grid[:, 1:]) * 100 / 255)
    return min(100, int(np.abs(down).sum() + np.abs(across).sum()) // 90)


def hash_bits(block: np.ndarray | None) -> np.ndarray:
    """(32,) uint8: the block's coefficients above their median, the last coefficient as the
    first bit (the order PDQ's hex form writes)."""
    if block is None:
        return np.zeros(BITS_SIDE * BITS_SIDE // 8, dtype=np.uint8)
    flat = block.ravel()
    median = np.partition(flat, 127)[127]  # the lower median of 256, as PDQ's torben gives
    return np.packbits((flat > median)[::-1])


def dihedral(block: np.ndarray | None) -> list[np.ndarray | None]:
    """The DCT blocks of the frame's eight turns and mirrors, in `pdq.DIHEDRAL` order: the
    frame, rot90, rot180, rot270, flip_x, flip_y, flip_plus1, flip_minus1."""
    if block is None:
        return [None] * 8
    i, j = np.indices(block.shape)
    odd_i, odd_j, odd_sum = (i & 1) == 1, (j & 1) == 1, ((i + j) & 1) == 1
    return [
        block,
        np.where(odd_j, block, -block).T,
        np.where(odd_sum, -block, block),
        np.where(odd_i, block, -block).T,
        np.where(odd_i, block, -block),
        np.where(odd_j, block, -block),
        block.T,
        np.where(odd_sum, -block, block).T,
    ]
