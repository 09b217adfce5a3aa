"""decode_job with the default spec, and PyAV decoding every frame, best of 3 each, in the tree
this runs from (run it from an old checkout, then from this one, alternately):

    python bench/refactor_ab/decode.py LABEL CLIP.mp4
"""

import sys
import time

import av
import cv2

from harmcache.extract.jobs import VideoJob, decode_job
from harmcache.extractors.base import ExtractSettings, WeightsSource


def best_of(n: int, fn) -> float:
    best = float("inf")
    for _ in range(n):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def pyav_all_frames(path: str) -> None:
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        for _ in container.decode(stream):
            pass


def main(label: str, path: str) -> None:
    cv2.setNumThreads(1)
    settings = ExtractSettings(weights=WeightsSource(random_init=True))
    job = VideoJob(path, "bench", tuple((n, settings) for n in ("yolo", "clip", "slowfast")))
    ours = best_of(3, lambda: decode_job(job))
    limit = best_of(3, lambda: pyav_all_frames(path))
    print(f"{label} decode_job {ours:.3f} pyav {limit:.3f} ratio {ours / limit:.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
