"""One bad video never ends a run: decode, worker and model failures become ledger entries, a
rerun reads no unchanged file, and `gc` never races a live writer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import pytest
import torch

from harmcache.errors import VideoError
from harmcache.extract.decode_ahead import video_streams
from harmcache.extract.handoff import decode_chunk_shared
from harmcache.extract.jobs import ChunkJob, VideoJob, decode_job
from harmcache.extract.per_video import extract_item
from harmcache.extractors.clip import ClipExtractor
from harmcache.store.cache import FeatureCache
from harmcache.video.decode import VideoSource
from tests.running import TINY_FLAGS, TINY_SETTINGS, last_json
from tests.running import invoke as cli

TINY = TINY_SETTINGS
# Small sizes, but default --workers and engine: decoding runs in a worker process.
DEFAULT_PATH = [*TINY_FLAGS, "--json"]


def crash_on_marked(task: ChunkJob):
    """Chunk decode function for worker processes: a file named *crash* takes its worker down,
    as a decoder segfault would."""
    if "crash" in Path(task.job.path).name:
        os._exit(3)
    return decode_chunk_shared(task)


def break_clip_on_odd_sizes(monkeypatch):
    """CLIP raises on 48-pixel-wide frames, as a library kernel bug on an odd frame size would;
    returns the real batch step."""
    real = ClipExtractor.compute_batch

    def fails_on_odd_sizes(self, frames, first_row):
        if frames.shape[2] == 48:
            raise RuntimeError("shape mismatch in a library kernel")
        return real(self, frames, first_row)

    monkeypatch.setattr(ClipExtractor, "compute_batch", fails_on_odd_sizes)
    return real


def test_a_model_error_on_one_video_is_a_ledger_entry_and_the_run_goes_on(
    make_video, tmp_path, monkeypatch
):
    for i in range(3):
        make_video(f"v/{i}.mp4", seed=i)
    odd, _ = make_video("v/odd.mp4", size=(48, 48), seed=9)
    real = break_clip_on_odd_sizes(monkeypatch)
    out = tmp_path / "cache"
    result = cli("extract", tmp_path / "v", "--out", out, *DEFAULT_PATH)
    assert result.exit_code == 0 and "Traceback" not in result.stderr
    summary = last_json(result)
    assert (summary["extracted"], summary["failed"]) == (3, 1)
    (failed,) = [r for r in summary["inputs"] if r["status"] == "failed"]
    assert failed["path"] == str(odd) and failed["reason"] == "model_error"
    assert "clip: RuntimeError: shape mismatch" in failed["message"]
    with FeatureCache(out) as cache:
        held = {f.extractor: len(cache.committed(f)) for f in cache.families()}
        (row,) = cache.failed().values()
    assert held == {"clip": 3, "yolo": 4, "slowfast": 4, "pdq": 4}  # the others kept it
    assert row["reason"] == "model_error" and Path(row["path"]).is_absolute()

    monkeypatch.setattr(ClipExtractor, "compute_batch", real)
    again = last_json(cli("extract", tmp_path / "v", "--out", out, *DEFAULT_PATH))
    assert (again["extracted"], again["cached"], again["failed"]) == (1, 3, 0)


@pytest.fixture
def decoded(make_video):
    path, _ = make_video("v.mp4", n_frames=8)
    extractor = ClipExtractor(TINY)
    source = VideoSource(path)
    job = VideoJob(str(path), "f" * 64, (("clip", TINY),))
    result = decode_job(job)
    assert result.error is None, result.error
    return extractor, result, source


def test_cuda_out_of_memory_retries_once_at_half_the_batch(decoded, monkeypatch):
    extractor, result, _ = decoded
    real, seen = ClipExtractor.compute_batch, []

    def oom_once(self, frames, first_row):
        seen.append(self.settings.batch_size)
        if len(seen) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real(self, frames, first_row)

    monkeypatch.setattr(ClipExtractor, "compute_batch", oom_once)
    item = extract_item(result, extractor)
    assert seen == [16, 8] and extractor.settings.batch_size == 16
    assert item.record.features.shape == (2, 512)


def test_cuda_out_of_memory_twice_is_an_oom_failure(decoded, monkeypatch):
    extractor, result, _ = decoded

    def always_oom(self, frames, first_row):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(ClipExtractor, "compute_batch", always_oom)
    with pytest.raises(VideoError, match="oom: clip: CUDA out of memory, also at batch size 8"):
        extract_item(result, extractor)
    assert extractor.settings.batch_size == 16


@pytest.mark.parametrize(
    "raised,reason", [(ValueError("odd stride"), "decode_error"), (MemoryError(), "oom")]
)
def test_an_unexpected_decoder_exception_is_a_failed_result(
    make_video, monkeypatch, raised, reason
):
    path, _ = make_video("v.mp4")

    def broken(self, wanted, chunk_frames=None):
        raise raised

    monkeypatch.setattr(VideoSource, "plan", broken)
    result = decode_job(VideoJob(str(path), "f" * 64, (("clip", TINY),)))
    assert result.error is not None and result.error.reason == reason


def test_a_decoder_that_kills_its_worker_fails_only_its_own_video(make_video):
    jobs = []
    for i, name in enumerate(["a.mp4", "crash.mp4", "b.mp4", "c.mp4"]):
        path, _ = make_video(name, seed=i)
        jobs.append(VideoJob(str(path), f"{i}" * 64, (("clip", TINY),)))
    results = []
    for stream in video_streams(jobs, workers=1, chunk=crash_on_marked):
        (result,) = stream.chunks  # one chunk per short video
        results.append(result)
    assert [r.job.path for r in results] == [j.path for j in jobs]
    assert [r.error.reason if r.error else "ok" for r in results] == [
        "ok",
        "worker_crash",
        "ok",
        "ok",
    ]
    assert all(r.decoded[360].frames.shape[0] == 2 for r in results if r.error is None)


def test_a_rerun_reads_no_unchanged_file_and_records_no_sighting_twice(make_video, tmp_path):
    paths = [make_video(f"v/{i}.mp4", seed=i)[0] for i in range(3)]
    out = tmp_path / "cache"
    args = ("extract", tmp_path / "v", "--out", out, "--extractors", "clip", *DEFAULT_PATH)
    assert last_json(cli(*args))["extracted"] == 3
    sightings = (out / "sources.jsonl").read_text().splitlines()
    assert len(sightings) == 3

    # Same size, mtime and inode but other bytes: only a rerun that reads the file could notice.
    st = paths[0].stat()
    with open(paths[0], "r+b") as f:
        f.seek(st.st_size // 2)
        f.write(b"\x00" * 16)
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns))
    again = last_json(cli(*args))
    assert (again["extracted"], again["cached"]) == (0, 3)
    assert (out / "sources.jsonl").read_text().splitlines() == sightings

    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    changed = last_json(cli(*args))
    assert changed["cached"] == 2 and len(changed["inputs"]) == 3  # rehashed: new bytes, new id
    assert len((out / "sources.jsonl").read_text().splitlines()) == 4


HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from harmcache.store.cache import FeatureCache
    with FeatureCache(sys.argv[1]) as cache, cache.lock().shared():
        print("locked", flush=True)
        time.sleep(600)
    """
)


def test_gc_refuses_while_a_live_writer_holds_the_cache_and_cleans_after_it_dies(
    make_video, tmp_path
):
    make_video("v/a.mp4")
    out = tmp_path / "cache"
    cli("extract", tmp_path / "v", "--out", out, "--extractors", "clip", *DEFAULT_PATH)
    leftover = next((out / "features").glob("clip-*")) / ".shard-x.h5.tmp-1-abc"
    leftover.write_bytes(b"a live writer's half-written shard")
    writer = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "locked"
        busy = cli("cache", "gc", out)
        assert busy.exit_code == 4
        assert busy.stderr.strip().splitlines() == [
            f"error: {out} is being written by a running extract; rerun `cache gc` when it has "
            "finished (leftovers of dead writers are kept until then)"
        ]
        assert leftover.exists()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    done = cli("cache", "gc", out)
    assert done.exit_code == 0 and "1 item(s) removed" in done.stdout
    assert not leftover.exists()


@pytest.mark.parametrize("inputs", [["missing.mp4"], ["empty_dir"]])
def test_nothing_usable_into_a_fresh_cache_is_a_one_line_usage_error(tmp_path, inputs):
    (tmp_path / "empty_dir").mkdir()
    out = tmp_path / "new-cache"
    result = cli("extract", *[tmp_path / i for i in inputs], "--out", out, *DEFAULT_PATH)
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: nothing usable: ")
    assert not out.exists()


def test_cache_info_shows_decode_backend_and_library_versions(make_video, tmp_path):
    make_video("v/a.mp4")
    out = tmp_path / "cache"
    cli("extract", tmp_path / "v", "--out", out, "--extractors", "clip", *DEFAULT_PATH)
    (family,) = last_json(cli("cache", "info", out, "--json"))["families"]
    assert sum(family["backends"].values()) == 1
    assert set(family["backends"]) <= {"decord upright", "pyav upright"}
    (made,) = family["versions"]
    assert made["videos"] == 1
    assert made["versions"]["torch"] == metadata.version("torch")
    assert {"torchvision", "ultralytics", "clip-anytorch", "pytorchvideo", "decord", "av"} <= set(
        made["versions"]
    )
    text = cli("cache", "info", out).stdout
    assert f"torch {metadata.version('torch')}" in text


def test_a_ray_batch_with_a_failing_video_commits_the_rest(make_video, tmp_path, monkeypatch):
    """The Ray actor's logic, called in this process: a video whose extractor raises is left
    out of the shard and reported failed with its family; the batch itself never fails."""
    from harmcache.extract.progress import Progress
    from harmcache.extract.ray_engine import _collect
    from harmcache.extract.ray_worker import ExtractActor, decode_row
    from harmcache.extract.results import JobResults
    from harmcache.store.family import Family

    rows = []
    for i, size in enumerate([(32, 64), (48, 48), (32, 64)]):
        path, _ = make_video(f"v{i}.mp4", size=size, seed=i)
        rows.append({"path": str(path), "file": str(path), "video_id": f"{i}" * 64,
                     "extractors": "clip"})  # fmt: skip
    decoded = [decode_row(r, settings={"clip": TINY}, sides=[360]) for r in rows]
    batch = {k: [d[k] for d in decoded] for k in decoded[0]}
    break_clip_on_odd_sizes(monkeypatch)
    family = Family.from_spec(ClipExtractor(TINY).spec())
    with FeatureCache(tmp_path / "cache", create=True) as cache:
        folder = cache.ensure_family(family)
    actor = ExtractActor(settings={"clip": TINY}, families={"clip": family},
                         folders={"clip": str(folder)}, shard_size=8)  # fmt: skip
    out = actor(batch)
    failures = [json.loads(f) for f in out["failures"]]
    assert [len(f) for f in failures] == [0, 1, 0]  # extracted, failed, extracted
    ((extractor, reason, _),) = failures[1]
    assert reason == "model_error" and extractor == "clip"
    shards = [json.loads(s) for s in out["shards"]]
    assert shards[1] == [] and shards[0] == shards[2] and shards[0][0][2] == 2
    assert [p.name for p in folder.glob("shard-*.h5")] == [shards[0][0][1]]

    # The driver ledgers the failure with its family and indexes the shard the actor wrote.
    class Rows:
        def iter_rows(self):
            return ({k: v[i] for k, v in out.items()} for i in range(len(out["video_id"])))

    jobs = [VideoJob(r["path"], r["video_id"], (("clip", TINY),)) for r in rows]
    with FeatureCache(tmp_path / "cache") as cache:
        outcomes = _collect(Rows(), jobs, JobResults(cache, Progress(), {"clip": family}))
        assert [outcomes[j.video_id].status for j in jobs] == ["extracted", "failed", "extracted"]
        (entry,) = cache.failed().values()
        assert (entry["reason"], entry["family"]) == ("model_error", family.name)
        assert cache.committed(family) == {jobs[0].video_id, jobs[2].video_id}
