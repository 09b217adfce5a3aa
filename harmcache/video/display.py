"""What a viewer sees: the container's display matrix (rotation, flips) and the sample aspect
ratio applied to a coded frame.

Phones store portrait video as landscape frames plus a display matrix that says "turn this
90° clockwise"; players, ffmpeg and every moderation service show the turned picture, so the
backbones must see it too. Pixels that are not square (720x576 PAL with a sample aspect ratio of
16:15 or 64:45) are resampled to square pixels, as a player stretches them. Turning is exact (a
transpose and flips of the decoded RGB frame: the same pixels as ffmpeg's auto-rotation); the
aspect resampling interpolates (area when shrinking a side, bilinear when stretching it).

A `Display` is recorded with every video (`VideoInfo.display`) as a short label, `upright` when
there is nothing to apply, so a reader can tell the videos decoded this way from those cached
before orientation was recorded (label empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

UPRIGHT = "upright"
"""The label of a video shown as coded."""


@dataclass(frozen=True)
class Display:
    """The turn (clockwise quarter turns), the mirror applied after it, and the sample aspect
    ratio (width of a coded pixel over its height) of a video's frames."""

    quarter_turns: int = 0
    """0-3 clockwise quarter turns of the coded picture."""
    hflip: bool = False
    """Mirror left-right after turning."""
    sar: Fraction = Fraction(1)

    @property
    def identity(self) -> bool:
        return self.quarter_turns == 0 and not self.hflip and self.sar == 1

    @property
    def label(self) -> str:
        parts = []
        if self.quarter_turns:
            parts.append(f"rotate_cw={90 * self.quarter_turns}")
        if self.hflip:
            parts.append("hflip")
        if self.sar != 1:
            parts.append(f"sar={self.sar.numerator}:{self.sar.denominator}")
        return ",".join(parts) or UPRIGHT

    @classmethod
    def parse(cls, label: str) -> Display:
        """The display a label describes; an empty label (recorded before orientation was
        applied) is the coded picture."""
        turns, hflip, sar = 0, False, Fraction(1)
        for part in filter(None, label.split(",")):
            key, _, value = part.partition("=")
            if key == "rotate_cw":
                turns = int(value) // 90 % 4
            elif key == "hflip":
                hflip = True
            elif key == "sar":
                num, den = value.split(":")
                sar = Fraction(int(num), int(den))
        return cls(turns, hflip, sar)

    @classmethod
    def from_matrix(cls, matrix, sar: Fraction | None = None) -> Display:
        """From FFmpeg's 3x3 display matrix (nine int32 in 16.16 fixed point, row-major, mapping a
        coded point (x, y) to (a x + c y, b x + d y)), snapped to the nearest quarter turn."""
        sar = _clean_sar(sar)
        if matrix is None:
            return cls(0, False, sar)
        a, b, _, c, d = (float(v) for v in list(matrix)[:5])
        # The matrix's linear part as a signed permutation: where do x and y go?
        transpose = abs(a) + abs(d) < abs(b) + abs(c)
        if transpose:  # x' = c y, y' = b x
            flip_x, flip_y = c < 0, b < 0
        else:  # x' = a x, y' = d y
            flip_x, flip_y = a < 0, d < 0
        return cls(*_dihedral(transpose, flip_x, flip_y), sar)

    def size(self, coded_width: int, coded_height: int) -> tuple[int, int]:
        """(width, height) of the displayed frame."""
        width = square_width(coded_width, self.sar)
        if self.quarter_turns % 2:
            return coded_height, width
        return width, coded_height

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """The displayed frame (H, W, 3) from a coded one; the frame itself when nothing is to
        be done."""
        if self.sar != 1:
            frame = _resample_width(frame, square_width(frame.shape[1], self.sar))
        if self.quarter_turns:
            frame = np.rot90(frame, -self.quarter_turns)
        if self.hflip:
            frame = frame[:, ::-1]
        if self.quarter_turns or self.hflip:
            frame = np.ascontiguousarray(frame)
        return frame


def square_width(coded_width: int, sar: Fraction) -> int:
    """Width in square pixels of `coded_width` pixels of aspect `sar` (height unchanged)."""
    return max(1, int(round(coded_width * sar)))


def _clean_sar(sar) -> Fraction:
    """An aspect ratio worth applying: unset, zero or absurd ratios are square pixels."""
    if not sar:
        return Fraction(1)
    sar = Fraction(sar)
    if sar <= 0 or not Fraction(1, 8) <= sar <= 8:
        return Fraction(1)
    return sar


def _dihedral(transpose: bool, flip_x: bool, flip_y: bool) -> tuple[int, bool]:
    """(clockwise quarter turns, mirror after) equal to: transpose if asked, then mirror x and
    y of the result as asked."""
    for turns in range(4):
        for hflip in (False, True):
            if _signature(turns, hflip) == (transpose, flip_x, flip_y):
                return turns, hflip
    raise AssertionError("unreachable: the eight dihedral maps cover every signature")


def _signature(turns: int, hflip: bool) -> tuple[bool, bool, bool]:
    """(transposed, x mirrored, y mirrored) of `turns` clockwise quarter turns then a mirror,
    found by applying them to a 2x3 probe array."""
    probe = np.arange(6).reshape(2, 3)
    out = np.rot90(probe, -turns)
    if hflip:
        out = out[:, ::-1]
    transposed = out.shape != probe.shape
    base = probe.T if transposed else probe
    flip_y = out[0, 0] not in base[0]
    flip_x = out[0, 0] not in base[:, 0]
    return transposed, flip_x, flip_y


def _resample_width(frame: np.ndarray, width: int) -> np.ndarray:
    import cv2

    if width == frame.shape[1]:
        return frame
    interpolation = cv2.INTER_AREA if width < frame.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(frame, (width, frame.shape[0]), interpolation=interpolation)
