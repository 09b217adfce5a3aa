import numpy as np
import pytest

from harmcache.extract import handoff
from harmcache.extract.handoff import SharedFrames, claim, decode_job_shared
from harmcache.extract.jobs import VideoJob, decode_job
from harmcache.extractors.base import ExtractSettings


@pytest.fixture
def job(make_video):
    path, _ = make_video("v.mp4", n_frames=12)
    return VideoJob(str(path), "id", (("clip", ExtractSettings(frames=5)),))


def test_frames_cross_through_shared_memory_unchanged_and_are_freed(job):
    shared = decode_job_shared(job)
    (video,) = shared.decoded.values()
    handle = video.frames
    assert isinstance(handle, SharedFrames)
    claimed = claim(shared).decoded[360]
    np.testing.assert_array_equal(claimed.frames, decode_job(job).decoded[360].frames)
    with pytest.raises(FileNotFoundError):
        handoff.SharedMemory(name=handle.name)


def test_a_small_shm_falls_back_to_plain_arrays(job, monkeypatch):
    monkeypatch.setattr(handoff, "_room_for", lambda nbytes: False)
    (video,) = decode_job_shared(job).decoded.values()
    assert isinstance(video.frames, np.ndarray)
