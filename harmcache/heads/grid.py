"""Every modality of a `SequenceData` on one time grid of fixed-length snippets.

Weakly supervised localization scores snippets, not rows, and CLIP/YOLO (one row per sampled
frame) and SlowFast (one row per window) do not share a time axis. The grid cuts each video into
snippets of `snippet_seconds` (the last one ends at the video's duration) and gives every
modality one row per snippet:

- frame modalities: the mean of the rows whose timestamp lies in the snippet, [start, end);
- window modalities (SlowFast): the window whose centre is nearest the snippet's centre (the
  earlier one on a tie), when that centre is within `window_reach` seconds of it.

A snippet no row of a modality reaches is masked in that modality (its values are zero); the
grid's own `mask` is True where at least one modality covers the snippet. The grid is plain
NumPy: thousands of snippets per video cost a sort and a `reduceat`, not a Python loop per row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from harmcache.errors import UsageError
from harmcache.heads.data import Modality, SequenceData, stage_two_duration

DEFAULT_SNIPPET_SECONDS = 1.0
WINDOW_MODALITIES = ("slowfast",)
"""Modalities whose rows are clip windows (timestamp = the window's centre frame), not frames."""


@dataclass
class SnippetGrid:
    """N videos on a grid of snippets: S is the most snippets any of them has."""

    data: SequenceData
    """The same videos with each modality as (N, S, D) rows, one per snippet; a modality's mask
    says where it covers the snippet; timestamps are snippet centres."""
    start: np.ndarray
    """(N, S) seconds; 0 past a video's last snippet."""
    end: np.ndarray
    """(N, S) seconds; the last snippet of a video ends at its duration."""
    inside: np.ndarray
    """(N, S) bool: the snippet lies inside the video (False in the padding)."""
    mask: np.ndarray
    """(N, S) bool: inside the video and covered by at least one modality."""
    snippet_seconds: float

    def __len__(self) -> int:
        return len(self.data)

    @property
    def n_snippets(self) -> np.ndarray:
        """(N,) snippets inside each video, covered or not."""
        return self.inside.sum(axis=1)

    def subset(self, idx: np.ndarray | list[int]) -> SnippetGrid:
        """The videos at positions `idx`, in that order, padded to the longest of them."""
        idx = np.asarray(idx, dtype=np.int64)
        inside = self.inside[idx]
        length = int(inside.sum(axis=1).max(initial=0))
        data = self.data.subset(idx)
        modalities = {
            name: Modality(
                m.values[idx, :length],
                m.mask[idx, :length],
                m.timestamp[idx, :length],
                m.position[idx, :length],
            )
            for name, m in self.data.modalities.items()
        }
        return SnippetGrid(
            SequenceData(data.video_ids, modalities, data.labels, data.duration),
            self.start[idx, :length],
            self.end[idx, :length],
            inside[:, :length],
            self.mask[idx, :length],
            self.snippet_seconds,
        )


def snippet_grid(
    data: SequenceData,
    snippet_seconds: float = DEFAULT_SNIPPET_SECONDS,
    *,
    windows: Iterable[str] = WINDOW_MODALITIES,
    window_reach: float | None = None,
) -> SnippetGrid:
    """`data` on a grid of `snippet_seconds` snippets (see the module docstring).

    A video has ⌈duration / snippet_seconds⌉ snippets (at least one). When its duration is
    unknown (0), the grid runs to the end of the snippet holding its last row instead
    (`stage_two_duration`). Modalities named in `windows` take the nearest window; the others
    average their rows. `window_reach` is how far (seconds) a window's centre may be from a
    snippet's centre and still cover it; None: half the median spacing of that video's window
    centres, so tiled windows cover the whole span they tile and a video with one window is
    covered throughout."""
    if not np.isfinite(snippet_seconds) or snippet_seconds <= 0:
        raise UsageError(f"snippet_seconds must be a positive number, got {snippet_seconds}")
    if window_reach is not None and not window_reach >= 0:
        raise UsageError(f"window_reach must be at least 0 seconds, got {window_reach}")
    windows = set(windows)
    duration = _durations(data, snippet_seconds)
    counts = np.maximum(np.ceil(duration / snippet_seconds - 1e-9), 1).astype(np.int64)
    n, length = len(data), int(counts.max(initial=0))
    k = np.arange(length)
    inside = k[None, :] < counts[:, None]
    start = np.where(inside, k * snippet_seconds, 0.0)
    end = np.where(inside, np.minimum((k + 1) * snippet_seconds, duration[:, None]), 0.0)
    centre = (start + end) / 2
    position = np.where(
        inside, np.clip(centre / np.maximum(duration, 1e-9)[:, None], 0, 1), 0
    ).astype(np.float32)
    modalities = {}
    covered = np.zeros((n, length), dtype=bool)
    for name, m in data.modalities.items():
        if name in windows:
            values, mask = _nearest_window(m, centre, inside, window_reach)
        else:
            values, mask = _average_frames(m, counts, length, snippet_seconds)
        modalities[name] = Modality(values, mask, np.where(inside, centre, 0.0), position)
        covered |= mask
    grid_data = SequenceData(list(data.video_ids), modalities, data.labels, duration)
    return SnippetGrid(grid_data, start, end, inside, covered, float(snippet_seconds))


def _durations(data: SequenceData, snippet_seconds: float) -> np.ndarray:
    """Each video's duration; where unknown (≤ 0), the end of the snippet holding its last row
    in any modality."""
    last = np.zeros(len(data))
    for m in data.modalities.values():
        if m.mask.size:
            last = np.maximum(last, np.where(m.mask, m.timestamp, 0).max(axis=1))
    return stage_two_duration(data.duration, last, snippet_seconds=snippet_seconds)


def _average_frames(
    m: Modality, counts: np.ndarray, length: int, snippet_seconds: float, chunk: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of each snippet's rows (float64 sums, float32 out) and where a snippet has any."""
    n, dim = len(counts), m.dim
    values = np.zeros((n, length, dim), dtype=np.float32)
    mask = np.zeros((n, length), dtype=bool)
    # In chunks of videos: a float64 copy of every row of an hour at 2 fps is gigabytes.
    for lo in range(0, n, chunk):
        part = slice(lo, lo + chunk)
        _average_chunk(
            m.take(np.arange(lo, min(lo + chunk, n))),
            counts[part],
            snippet_seconds,
            values[part],
            mask[part],
        )
    return values, mask


def _average_chunk(
    m: Modality, counts: np.ndarray, snippet_seconds: float, values: np.ndarray, mask: np.ndarray
) -> None:
    """`_average_frames` for a few videos, written into `values` and `mask` (views)."""
    n, length, dim = values.shape
    video, row = np.nonzero(m.mask)
    if not video.size:
        return
    # A row at or past the end (a timestamp rounded up) belongs to the last snippet.
    snippet = np.floor(m.timestamp[video, row] / snippet_seconds).astype(np.int64)
    snippet = np.clip(snippet, 0, counts[video] - 1)
    cell = video * length + snippet
    order = np.argsort(cell, kind="stable")
    cell = cell[order]
    first = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
    rows = m.values[video[order], row[order]].astype(np.float64)
    sums = np.add.reduceat(rows, first, axis=0)
    size = np.diff(np.r_[first, len(cell)])
    values[cell[first] // length, cell[first] % length] = (sums / size[:, None]).astype(np.float32)
    mask[cell[first] // length, cell[first] % length] = True


def _nearest_window(
    m: Modality, centre: np.ndarray, inside: np.ndarray, reach: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per snippet, the row whose timestamp is nearest the snippet's centre, within reach."""
    n, length = centre.shape
    values = np.zeros((n, length, m.dim), dtype=np.float32)
    mask = np.zeros((n, length), dtype=bool)
    for i in range(n):  # one searchsorted per video; the work inside is vectorised
        rows = np.flatnonzero(m.mask[i])
        if not rows.size:
            continue
        order = np.argsort(m.timestamp[i, rows], kind="stable")
        rows, stamps = rows[order], m.timestamp[i, rows[order]]
        c = centre[i]
        right = np.clip(np.searchsorted(stamps, c, side="left"), 0, len(stamps) - 1)
        left = np.clip(right - 1, 0, len(stamps) - 1)
        # The earlier window wins a tie.
        pick = np.where(np.abs(c - stamps[left]) <= np.abs(stamps[right] - c), left, right)
        limit = _reach(stamps) if reach is None else reach
        near = inside[i] & (np.abs(stamps[pick] - c) <= limit + 1e-9)
        values[i, near] = m.values[i, rows[pick[near]]]
        mask[i] = near
    return values, mask


def _reach(stamps: np.ndarray) -> float:
    if len(stamps) < 2:
        return np.inf
    return float(np.median(np.diff(stamps))) / 2
