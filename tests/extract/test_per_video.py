"""The per-video extraction path both engines share (`extract_video`): real random-init
extractors on tiny real encoded videos, and the Ray actor's use of it (called in this process:
no Ray cluster is started)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harmcache.errors import VideoError
from harmcache.extract import jobs
from harmcache.extract.jobs import ChunkResult, VideoJob, decode_chunks, decode_job, probe_job
from harmcache.extract.per_video import extract_video
from harmcache.extractors.base import ExtractSettings, WeightsSource, get_extractor
from harmcache.extractors.clip import ClipExtractor
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family

NAMES = ("clip", "yolo")
TINY = ExtractSettings(frames=2, yolo_imgsz=64, weights=WeightsSource(random_init=True))
LONG = replace(TINY, chunk_frames=2)  # several decode chunks per video


def job_for(path, settings=TINY, vid="v" * 64) -> VideoJob:
    return VideoJob(str(path), vid, tuple((n, settings) for n in NAMES))


@pytest.fixture(scope="module")
def extractors():
    chosen = {}
    for name in NAMES:
        chosen[name] = get_extractor(name)(TINY)
        chosen[name].load()
    return chosen


def test_streamed_chunks_give_each_extractor_its_whole_video_features(make_video, extractors):
    path, _ = make_video("v.mp4", n_frames=24)
    plan = probe_job(job_for(path, LONG)).plan
    assert len(plan.chunks) > 1
    outcome = extract_video(plan, decode_chunks(plan), extractors)
    assert outcome.error is None and outcome.failures == {} and outcome.ledger() == []
    assert list(outcome.features) == list(NAMES)
    whole = decode_job(job_for(path))
    for name, extractor in extractors.items():
        reference = extractor.extract(whole.decoded[extractor.settings.decode_short_side])
        got = outcome.features[name]
        assert (got.video_id, got.source_path, got.info) == ("v" * 64, str(path), plan.info)
        np.testing.assert_array_equal(got.record.features, reference.features)
        np.testing.assert_array_equal(got.record.timestamp, reference.timestamp)


def test_a_failing_extractor_fails_its_own_family_only(make_video, extractors, monkeypatch):
    path, _ = make_video("v.mp4")

    def broken(self, frames, first_row):
        raise RuntimeError("a kernel bug")

    monkeypatch.setattr(ClipExtractor, "compute_batch", broken)
    result = decode_job(job_for(path))
    outcome = extract_video(result.plan, result.chunks(), extractors)
    assert list(outcome.features) == ["yolo"] and outcome.error is None
    (name, error), *rest = outcome.ledger()
    assert (name, error.reason, rest) == ("clip", "model_error", [])
    assert error.message == "clip: RuntimeError: a kernel bug"


def test_a_chunk_that_fails_to_decode_fails_the_whole_video(make_video, extractors):
    path, _ = make_video("v.mp4")
    plan = probe_job(job_for(path)).plan
    broken = VideoError("decode_error", "corrupt packet")
    outcome = extract_video(plan, [ChunkResult(plan.job, 0, {}, broken)], extractors)
    assert outcome.features == {} and outcome.failures == {}
    assert outcome.ledger() == [(None, broken)]


# --- the Ray actor on the same path ------------------------------------------------------------
def ray_batch(videos: list[tuple[str, Path]], settings: ExtractSettings) -> dict:
    """Rows as Ray's decode tasks make them, gathered into one batch: (path as given, file)."""
    from harmcache.extract.ray_worker import decode_row

    rows = [
        {"path": given, "file": str(file), "video_id": f"{i}" * 64, "extractors": ",".join(NAMES)}
        for i, (given, file) in enumerate(videos)
    ]
    decoded = [decode_row(r, settings=dict.fromkeys(NAMES, settings), sides=[360]) for r in rows]
    return {k: [d[k] for d in decoded] for k in decoded[0]}


def actor_for(cache: FeatureCache, settings: ExtractSettings, shard_size: int = 8):
    from harmcache.extract.ray_worker import ExtractActor

    families = {n: Family.from_spec(get_extractor(n)(settings).spec()) for n in NAMES}
    folders = {n: str(cache.ensure_family(f)) for n, f in families.items()}
    actor = ExtractActor(
        settings=dict.fromkeys(NAMES, settings),
        families=families,
        folders=folders,
        shard_size=shard_size,
    )
    return actor, families


def test_the_ray_path_probes_each_video_once(make_video, tmp_path, monkeypatch):
    short, _ = make_video("short.mp4", n_frames=1)  # one frame: one chunk, decoded in its row
    long, _ = make_video("long.mp4", n_frames=40, seed=1)
    opened = []

    class CountedSource(jobs.VideoSource):
        def __init__(self, path, **kwargs):
            opened.append(Path(path).name)
            super().__init__(path, **kwargs)

    monkeypatch.setattr(jobs, "VideoSource", CountedSource)
    with FeatureCache(tmp_path / "cache", create=True) as cache:
        actor, families = actor_for(cache, LONG)
        batch = ray_batch([(str(short), short), (str(long), long)], LONG)
        assert list(batch["decoded"]) == [True, False]
        out = actor(batch)
        assert [json.loads(f) for f in out["failures"]] == [[], []]
        assert sorted(opened) == ["long.mp4", "short.mp4"]  # the rows carried the plans
        cache.refresh()
        ray_features = {n: cache.load(f) for n, f in families.items()}
    # The same features as the local engine's path for the same video.
    plan = probe_job(job_for(long, LONG, vid="1" * 64)).plan
    local = extract_video(plan, decode_chunks(plan), actor.extractors)
    for name, item in local.features.items():
        got = ray_features[name]["1" * 64].record
        np.testing.assert_array_equal(got.features, item.record.features)


def test_a_short_video_crosses_decoded_in_its_row(make_video, tmp_path):
    path, _ = make_video("v.mp4", n_frames=8)
    with FeatureCache(tmp_path / "cache", create=True) as cache:
        actor, _ = actor_for(cache, TINY)
        batch = ray_batch([(str(path), path)], TINY)
        assert list(batch["decoded"]) == [True] and len(batch["frames_360"][0]) > 0
        assert json.loads(actor(batch)["failures"][0]) == []


def test_a_retried_ray_batch_redoes_nothing_it_committed(make_video, tmp_path, monkeypatch):
    paths = [make_video(f"v{i}.mp4", seed=i)[0] for i in range(3)]
    with FeatureCache(tmp_path / "cache", create=True) as cache:
        actor, _ = actor_for(cache, TINY, shard_size=2)
        batch = ray_batch([(str(p), p) for p in paths], TINY)
        first = actor(batch)
        shards = sorted(Path(cache.root).glob("features/*/shard-*.h5"))
        assert len(shards) == 4  # two per family: 2 + 1 videos
        inodes = [p.stat().st_ino for p in shards]
        calls = []
        for extractor in actor.extractors.values():
            monkeypatch.setattr(extractor, "run_batch", lambda *a: calls.append(a))
        again = actor(batch)  # as Ray retries a batch after its worker died
        assert calls == [] and list(again["shards"]) == list(first["shards"])
        assert [p.stat().st_ino for p in shards] == inodes


def test_the_ray_actor_opens_a_long_video_by_its_absolute_path(make_video, tmp_path, monkeypatch):
    path, _ = make_video("in/long.mp4", n_frames=40)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    given = "in/long.mp4"  # as the user gave it; a Ray worker runs in another directory
    with FeatureCache(tmp_path / "cache", create=True) as cache:
        actor, families = actor_for(cache, LONG)
        batch = ray_batch([(given, path.absolute())], LONG)
        monkeypatch.chdir(tmp_path / "elsewhere")
        out = actor(batch)
        assert json.loads(out["failures"][0]) == []
        cache.refresh()
        (item,) = cache.load(families["clip"]).values()
    assert item.source_path == given
