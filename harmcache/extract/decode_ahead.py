"""Decoding ahead of the models: probe and chunk tasks on a pool of worker processes, handed
to the model process in job order through shared memory, with memory bounded by chunks.

A worker that dies (a decoder crashing the process) fails only the video it was decoding.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from harmcache.errors import VideoError
from harmcache.extract.handoff import claim, decode_chunk_shared
from harmcache.extract.jobs import (
    ChunkJob,
    ChunkResult,
    ProbeResult,
    VideoJob,
    VideoPlan,
    decode_chunks,
    exit_with_parent,
    probe_job,
)


@dataclass
class VideoStream:
    """One video on its way to the models: its plan, or why it has none, and its decoded chunks
    in order (pulled from the decode workers as the models consume them)."""

    job: VideoJob
    plan: VideoPlan | None
    error: VideoError | None
    chunks: Iterator[ChunkResult]


def video_streams(
    jobs: list[VideoJob],
    workers: int,
    *,
    probe: Callable[[VideoJob], ProbeResult] = probe_job,
    chunk: Callable[[ChunkJob], ChunkResult] | None = None,
) -> Iterator[VideoStream]:
    """Decode ahead of the models in worker processes, yielding videos in job order; each
    video's chunks must be consumed (or abandoned) before the next video is asked for.

    Without workers, or for one video that fits one chunk, decoding runs inline."""
    if workers > 0 and len(jobs) == 1:
        first = probe(jobs[0])
        if first.error is not None or len(first.plan.chunks) <= 1:
            yield _inline_stream(first)
            return
        decoder = _PoolDecoder(jobs, workers, probe, chunk or decode_chunk_shared, {0: first})
        yield from decoder.streams()
        return
    if workers == 0:
        for job in jobs:
            yield _inline_stream(probe(job))
        return
    yield from _PoolDecoder(jobs, workers, probe, chunk or decode_chunk_shared).streams()


def _inline_stream(probed: ProbeResult) -> VideoStream:
    if probed.error is not None:
        return VideoStream(probed.job, None, probed.error, iter(()))
    return VideoStream(probed.job, probed.plan, None, decode_chunks(probed.plan))


class _PoolDecoder:
    """Probe and chunk tasks on a process pool, at most `2 × workers` chunks decoded ahead of
    the models (so memory is bounded by chunks, never by a video's length).

    A worker that dies (a decoder crashing the process) breaks the pool: the pool is rebuilt,
    the task it was on is retried once on its own, and only a video that kills a worker twice
    is recorded as `worker_crash`. Every other task is resubmitted untouched."""

    def __init__(self, jobs, workers, probe, chunk, probed: dict[int, ProbeResult] | None = None):
        self.jobs = jobs
        self.workers = workers
        self.probe = probe
        self.chunk = chunk
        self.ahead = max(2, workers * 2)
        self.pool = _decode_pool(workers)
        self.plans: dict[int, ProbeResult] = dict(probed or {})
        self.futures: dict[tuple, Future] = {}
        self.cursor = (0, 0)

    def streams(self) -> Iterator[VideoStream]:
        try:
            for i, job in enumerate(self.jobs):
                self.cursor = (i, 0)
                self._submit_ahead()
                probed = self._probe_result(i)
                if probed.error is not None:
                    yield VideoStream(job, None, probed.error, iter(()))
                    continue
                chunks = self._chunks_of(i, probed.plan)
                yield VideoStream(job, probed.plan, None, chunks)
                chunks.close()
                self._drop(lambda key, i=i: key[0] == "c" and key[1] == i)
                self.plans.pop(i, None)
        finally:
            self.pool.shutdown(wait=False, cancel_futures=True)
            _release(self.futures)

    def _chunks_of(self, i: int, plan: VideoPlan) -> Iterator[ChunkResult]:
        for c in range(len(plan.chunks)):
            self.cursor = (i, c)
            self._submit_ahead()
            key = ("c", i, c)
            result = self._result(key, lambda p=plan, c=c: (self.chunk, p.chunk_job(c)))
            if result is None:  # it took the worker down twice
                error = VideoError("worker_crash", "the decoder crashed its worker process")
                result = ChunkResult(plan.job, plan.chunks[c].upto, {}, error)
            yield claim(result)
            if result.error is not None:
                return

    def _probe_result(self, i: int) -> ProbeResult:
        if i not in self.plans:
            result = self._result(("p", i), lambda: (self.probe, self.jobs[i]))
            if result is None:
                error = VideoError("worker_crash", "the decoder crashed its worker process")
                result = ProbeResult(self.jobs[i], None, error)
            self.plans[i] = result
        return self.plans[i]

    def _submit_ahead(self) -> None:
        """Keep the probes of the next videos and up to `ahead` chunks in flight."""
        i0, c0 = self.cursor
        for j in range(i0, min(i0 + self.ahead + 1, len(self.jobs))):
            if j not in self.plans and ("p", j) not in self.futures:
                self.futures[("p", j)] = self.pool.submit(self.probe, self.jobs[j])
        budget = self.ahead - sum(1 for key in self.futures if key[0] == "c")
        j = i0
        while budget > 0 and j < len(self.jobs):
            probed = self._probe_if_done(j)
            if probed is None:
                return
            if probed.plan is not None:
                for c in range(c0 if j == i0 else 0, len(probed.plan.chunks)):
                    if budget <= 0:
                        return
                    if ("c", j, c) not in self.futures:
                        task = probed.plan.chunk_job(c)
                        self.futures[("c", j, c)] = self.pool.submit(self.chunk, task)
                        budget -= 1
            j += 1

    def _probe_if_done(self, j: int) -> ProbeResult | None:
        if j in self.plans:
            return self.plans[j]
        future = self.futures.get(("p", j))
        if future is None or not future.done():
            return None
        return self._probe_result(j)

    def _result(self, key: tuple, task: Callable[[], tuple]):
        """The task's result, or None if it crashed its worker twice."""
        future = self.futures.pop(key, None)
        if future is None:
            fn, arg = task()
            future = self.pool.submit(fn, arg)
        try:
            return future.result()
        except BrokenProcessPool:
            self.pool.shutdown(wait=False, cancel_futures=True)
            _release(self.futures)  # every other task is resubmitted as it is needed
            self.pool = _decode_pool(self.workers)
            fn, arg = task()
            result = _decode_alone(self.pool, fn, arg)
            if result is None:
                self.pool = _decode_pool(self.workers)
            return result

    def _drop(self, which: Callable[[tuple], bool]) -> None:
        """Forget the tasks of an abandoned video, freeing their shared memory."""
        dropped = {key: f for key, f in self.futures.items() if which(key)}
        for key in dropped:
            del self.futures[key]
        for future in dropped.values():
            future.cancel()
        _release(dropped)


def _release(futures: dict) -> None:
    """Free the shared-memory frames of decodes that finished but will not be used."""
    for future in futures.values():
        if future.done() and not future.cancelled() and future.exception() is None:
            result = future.result()
            if isinstance(result, ChunkResult):
                claim(result)
    futures.clear()


def _decode_pool(workers: int):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the parent holds torch's thread pools, which do not survive a fork.
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=mp.get_context("spawn"),
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    )


def _decode_alone(pool, fn, arg):
    try:
        return pool.submit(fn, arg).result()
    except BrokenProcessPool:
        pool.shutdown(wait=False, cancel_futures=True)
        return None
