"""Hand decoded frames from decode workers to the model process through shared memory.

A 10-s 720p clip decodes to about 100 MB of frames. Pickled through the process pool's one
result pipe, that costs the model process about 0.6 s of CPU per video (measured), which caps
a GPU's intake; a shared-memory segment costs the model process one memcpy. A long video
crosses one decode chunk at a time (`decode_chunk_shared`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from harmcache.extract.jobs import (
    ChunkJob,
    ChunkResult,
    DecodeResult,
    VideoJob,
    decode_chunk,
    decode_job,
)

SHM_ROOT = "/dev/shm"
HEADROOM = 4
"""Use shared memory only while /dev/shm has this many times the frames' size free (a small
container /dev/shm falls back to the pipe)."""


@dataclass(frozen=True)
class SharedFrames:
    """Where a worker left a video's frames."""

    name: str
    shape: tuple[int, ...]
    dtype: str


def decode_job_shared(job: VideoJob) -> DecodeResult:
    """decode_job, run in a worker, with the frames moved into shared memory."""
    result = decode_job(job)
    for video in result.decoded.values():
        video.frames = _to_shared(video.frames)
    return result


def decode_chunk_shared(task: ChunkJob) -> ChunkResult:
    """decode_chunk, run in a worker, with the frames moved into shared memory."""
    result = decode_chunk(task)
    for video in result.decoded.values():
        video.frames = _to_shared(video.frames)
    return result


def claim(result: DecodeResult | ChunkResult) -> DecodeResult | ChunkResult:
    """In the model process: take the frames out of shared memory and free the segments."""
    for video in result.decoded.values():
        if isinstance(video.frames, SharedFrames):
            video.frames = _from_shared(video.frames)
    return result


def _room_for(nbytes: int) -> bool:
    try:
        return shutil.disk_usage(SHM_ROOT).free > HEADROOM * nbytes
    except OSError:
        return False


def _to_shared(frames: np.ndarray) -> np.ndarray | SharedFrames:
    if frames.nbytes == 0 or not _room_for(frames.nbytes):
        return frames
    shm = SharedMemory(create=True, size=frames.nbytes)
    view = np.ndarray(frames.shape, frames.dtype, buffer=shm.buf)
    view[...] = frames
    handle = SharedFrames(shm.name, tuple(frames.shape), frames.dtype.str)
    del view  # the buffer must have no users before close()
    shm.close()
    return handle


def _from_shared(handle: SharedFrames) -> np.ndarray:
    shm = SharedMemory(name=handle.name)
    try:
        view = np.ndarray(handle.shape, np.dtype(handle.dtype), buffer=shm.buf)
        frames = view.copy()
        del view
    finally:
        shm.close()
        shm.unlink()
    return frames
