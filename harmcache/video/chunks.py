"""The decode plan of one video: which frames each decode pass keeps and where it starts.

Decoding works in chunks (`plan_chunks`): consecutive groups of pictures (GOPs) holding at most
a set number of wanted frames, so a long video is never held in memory at once. A stretch of
GOPs nobody wants is sought over rather than decoded through. The probe frames (first, middle
and last: `probe_indices`) join the plan, so the probe costs no pass of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harmcache.video.stream_index import StreamIndex

CHUNK_FRAMES = 128
"""Default wanted frames per decode chunk: 128 frames of 640×360 are 88 MB."""

SEEK_GAP = 16
"""Frames nobody wants that a decode pass seeks over rather than decodes through: a seek (with
the decoder's reset) costs about as much as decoding a few frames."""


@dataclass(frozen=True)
class ChunkPlan:
    """One decode pass: start at keyframe `start`, keep the frames at `indices`."""

    start: int
    indices: np.ndarray
    """Sorted unique frames kept (wanted by an extractor or by the probe)."""
    upto: int
    """Every planned frame at or before this index is in this chunk or an earlier one."""
    start_pts: int | None = None
    pts: np.ndarray | None = None
    """Presentation timestamps of `indices` (None: count frames from the start)."""
    seeks: tuple[tuple[int, int], ...] = ()
    """(position in `indices`, presentation timestamp of that frame's keyframe) wherever at
    least `SEEK_GAP` frames nobody wants come first: decoding seeks there rather than decoding
    through them. At position 0, a pass going on from the chunk before seeks too."""


def plan_chunks(wanted: np.ndarray, index: StreamIndex, max_frames: int) -> list[ChunkPlan]:
    """Split sorted unique `wanted` frames into chunks of whole GOPs holding at most
    `max_frames` of them; a GOP holding more is split, each piece decoded from its keyframe.

    Consecutive chunks end and start at GOP boundaries, so a dense plan decodes every needed
    GOP exactly once; a stretch of `SEEK_GAP` or more frames up to a keyframe that no one wants
    is sought over, so GOPs holding no wanted frame are never decoded."""
    wanted = np.unique(np.asarray(wanted, dtype=np.int64))
    if wanted.size == 0:
        return []
    keys = index.keyframes if index.pts is not None else np.zeros(1, np.int64)
    gop = np.searchsorted(keys, wanted, side="right") - 1
    chunks: list[list[tuple[int, np.ndarray]]] = []  # (keyframe, its wanted frames) per GOP
    count = 0
    for g in np.unique(gop):
        members = wanted[gop == g]
        key = int(keys[g])
        if chunks and count + len(members) <= max_frames:
            chunks[-1].append((key, members))
            count += len(members)
            continue
        for piece in range(0, len(members), max_frames):
            part = members[piece : piece + max_frames]
            chunks.append([(key, part)])
            count = len(part)
    pts = index.pts
    out = []
    before = None  # the last wanted frame of the GOPs planned so far
    for parts in chunks:
        seeks, position = [], 0
        for key, members in parts:
            if pts is not None and before is not None and key - before - 1 >= SEEK_GAP:
                seeks.append((position, int(pts[key])))
            position += len(members)
            before = int(members[-1])
        indices = np.concatenate([members for _, members in parts])
        start = parts[0][0]
        out.append(
            ChunkPlan(
                start=start,
                indices=indices,
                upto=int(indices[-1]),
                start_pts=int(pts[start]) if pts is not None else None,
                pts=pts[indices] if pts is not None else None,
                seeks=tuple(seeks),
            )
        )
    return out


def probe_indices(n_frames: int) -> np.ndarray:
    """First, middle and last frame: each must decode for a video to count as readable."""
    return np.unique(np.array([0, n_frames // 2, n_frames - 1], dtype=np.int64))
