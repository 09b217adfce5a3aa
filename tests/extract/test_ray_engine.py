"""The Ray engine: same features as the local engine, resumable, and safe when a worker dies."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from harmcache.errors import CacheError, UsageError
from harmcache.extract.jobs import VideoJob
from harmcache.extract.pipeline import build_extractors, run_extraction
from harmcache.extractors.base import ExtractSettings, WeightsSource
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.store.maintenance import verify
from harmcache.store.shard import read_header
from harmcache.video.encode import write_video
from tests.conftest import coded_frames
from tests.running import TINY_FLAGS, TINY_SETTINGS

ray = pytest.importorskip("ray")

TINY = TINY_SETTINGS
TINY_ARGS = TINY_FLAGS
N_GOOD = 3


def video(path: Path, seed: int) -> Path:
    return write_video(path, coded_frames(12, 64, 96, seed=seed), fps=8)


def harmcache_cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("harmcache")  # the installed console script
    # Ray runs in this test process leave OMP_NUM_THREADS=1 in its environment; a user's shell
    # has no such thing, and the thread count changes float results, so the command gets the
    # shell's view.
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    return subprocess.run(
        [str(exe), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=400, env=env
    )


def features(cache_dir: Path) -> dict[tuple[str, str], object]:
    with FeatureCache(cache_dir) as cache:
        return {(f.name, vid): v for f in cache.families() for vid, v in cache.load(f).items()}


def shard_members(cache_dir: Path) -> dict[str, list[str]]:
    """Family name → every video id held by any shard file, repeats kept."""
    out: dict[str, list[str]] = {}
    for shard in sorted((cache_dir / "features").glob("*/shard-*.h5")):
        out.setdefault(shard.parent.name, []).extend(read_header(shard).video_ids)
    return out


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    for i in range(N_GOOD):
        video(folder / f"v{i}.mp4", seed=i)
    (folder / "bad.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    return folder


@pytest.fixture(scope="module")
def local_cache(inputs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "cache"
    extractors = build_extractors(["clip", "yolo", "slowfast"], TINY)
    run_extraction([inputs], out, extractors, workers=0, shard_size=2)
    return out


@pytest.fixture(scope="module")
def ray_cli_run(inputs, tmp_path_factory) -> tuple[Path, dict]:
    """`harmcache extract --engine ray` in a subprocess (its own local Ray instance), given
    relative paths: Ray workers do not run in the caller's working directory."""
    work = tmp_path_factory.mktemp("ray")
    run = harmcache_cli(
        "extract", os.path.relpath(inputs, work), "--out", "cache", "--engine", "ray",
        "--shard-size", "2", "--json", "--extractors", "clip,yolo,slowfast", *TINY_ARGS, cwd=work,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return work / "cache", json.loads(run.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def ray_local():
    """One in-process local Ray instance for the module; run_ray joins it instead of starting
    its own, and its workers are children of this process (the kill test needs that)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")  # fmt: skip
    yield
    ray.shutdown()


@pytest.mark.slow
def test_ray_features_equal_local_bit_for_bit(local_cache, ray_cli_run):
    ray_cache, _ = ray_cli_run
    local, remote = features(local_cache), features(ray_cache)
    assert remote.keys() == local.keys()
    assert {fam.split("-")[0] for fam, _ in local} == {"clip", "yolo", "slowfast"}
    assert len(local) == 3 * N_GOOD
    for key, ref in local.items():
        got = remote[key]
        for name in ("features", "frame_index", "timestamp"):
            assert np.array_equal(getattr(got.record, name), getattr(ref.record, name)), (key, name)
        assert got.record.extras.keys() == ref.record.extras.keys()
        for name, array in ref.record.extras.items():
            assert np.array_equal(got.record.extras[name], array), (key, name)
        assert got.info == ref.info
    with FeatureCache(ray_cache) as cache:
        assert verify(cache) == []


@pytest.mark.slow
def test_ray_bad_video_lands_in_the_summary_and_the_ledger(ray_cli_run, inputs):
    ray_cache, summary = ray_cli_run
    assert (summary["extracted"], summary["cached"], summary["failed"]) == (N_GOOD, 0, 1)
    bad = [r for r in summary["inputs"] if r["status"] == "failed"]
    assert [(Path(r["path"]).name, r["reason"]) for r in bad] == [("bad.mp4", "unreadable")]
    with FeatureCache(ray_cache) as cache:
        assert [Path(p).name for p in cache.failed()] == ["bad.mp4"]


@pytest.mark.slow
def test_ray_rerun_extracts_only_what_is_missing(ray_cli_run, inputs, tmp_path, ray_local):
    out = tmp_path / "cache"
    shutil.copytree(ray_cli_run[0], out)
    before = {p: p.read_bytes() for p in out.glob("features/*/shard-*.h5")}
    new = video(tmp_path / "new.mp4", seed=99)
    extractors = build_extractors(["clip", "yolo", "slowfast"], TINY)

    summary = run_extraction([inputs, new], out, extractors, shard_size=2, engine="ray")

    assert (summary.count("extracted"), summary.count("cached"), summary.count("failed")) == (
        1, N_GOOD, 1,
    )  # fmt: skip
    assert [r.path for r in summary.inputs if r.status == "extracted"] == [str(new)]
    assert {p: p.read_bytes() for p in before} == before
    members = shard_members(out)
    assert len(members) == 3 and all(len(set(v)) == len(v) == N_GOOD + 1 for v in members.values())
    with FeatureCache(out) as cache:
        assert verify(cache) == []


@pytest.mark.slow
def test_killed_actor_loses_and_duplicates_nothing(tmp_path, ray_local):
    import psutil

    paths = [video(tmp_path / "in" / f"k{i}.mp4", seed=10 + i) for i in range(4)]
    out = tmp_path / "cache"
    killed: list[tuple[int, Path, int]] = []

    def kill_actor_after_first_shard() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            shards = list(out.glob("features/*/shard-*.h5"))
            if shards:
                for proc in psutil.Process().children(recursive=True):
                    try:
                        if "ExtractActor" in " ".join(proc.cmdline()):
                            proc.send_signal(signal.SIGKILL)
                            killed.append((proc.pid, shards[0], shards[0].stat().st_ino))
                    except psutil.Error:
                        pass
                return
            time.sleep(0.01)

    # yolo first: its shard lands quickly, then the kill hits the actor while CLIP still runs on
    # the same batch, so Ray retries a batch whose first chunk is already committed.
    extractors = build_extractors(["yolo", "clip"], TINY)
    killer = threading.Thread(target=kill_actor_after_first_shard, daemon=True)
    killer.start()
    summary = run_extraction(paths, out, extractors, shard_size=2, engine="ray")
    killer.join()

    assert killed, "no actor was killed"
    (_, first, inode), *_ = killed
    assert first.stat().st_ino == inode, "the retry rewrote a shard it had already committed"
    assert summary.count("extracted") == 4
    members = shard_members(out)
    assert sorted(name.split("-")[0] for name in members) == ["clip", "yolo"]
    ids = sorted(r.video_id for r in summary.inputs)
    for name, vids in members.items():
        assert sorted(vids) == ids, name  # each video in exactly one shard per family
    with FeatureCache(out) as cache:
        assert verify(cache) == []
        assert all(len(cache.committed(f)) == 4 for f in cache.families())


def _one_job(tmp_path, device: str = "cpu"):
    settings = ExtractSettings(device=device, weights=WeightsSource(random_init=True))
    extractors = build_extractors(["yolo"], settings)
    families = [Family.from_spec(ex.spec()) for ex in extractors]
    cache = FeatureCache(tmp_path / "cache", create=True)
    job = VideoJob(str(tmp_path / "v.mp4"), "0" * 64, (("yolo", settings),))
    return cache, [job], extractors, families


def _run_ray(cache, jobs, extractors, families, gpus_per_worker=0.0):
    from harmcache.extract.progress import Progress
    from harmcache.extract.ray_engine import run_ray

    return run_ray(cache, jobs, extractors, families, shard_size=1, address=None,
                   gpus_per_worker=gpus_per_worker, progress=Progress())  # fmt: skip


def test_missing_ray_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(UsageError, match=r"--engine ray needs ray: pip install 'harmcache\[ray\]'"):
        _run_ray(*_one_job(tmp_path))


def test_cuda_without_gpus_per_worker_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="--device cuda with --engine ray needs --gpus-per-worker"):
        _run_ray(*_one_job(tmp_path, device="cuda"))


def test_more_gpus_per_worker_than_the_cluster_has_is_a_usage_error(tmp_path, ray_local):
    with pytest.raises(UsageError, match=r"--gpus-per-worker 1 but the Ray cluster has 0 GPU"):
        _run_ray(*_one_job(tmp_path), gpus_per_worker=1.0)


def test_actor_refuses_a_node_whose_weights_differ(tmp_path):
    from harmcache.extract.ray_worker import ExtractActor

    cache, _, extractors, families = _one_job(tmp_path)
    other = Family("yolo", "f" * 64, families[0].spec)
    with pytest.raises(CacheError, match="give every node the same weights"):
        ExtractActor(settings={"yolo": extractors[0].settings}, families={"yolo": other},
                     folders={"yolo": str(cache.family_dir(other))}, shard_size=1)  # fmt: skip


def test_a_worker_error_reaches_the_driver_as_that_error(tmp_path, ray_local):
    cache, jobs, extractors, families = _one_job(tmp_path)
    other = Family("yolo", "f" * 64, families[0].spec)
    with pytest.raises(CacheError, match=r"^yolo on this Ray node has fingerprint \w+, the driver"):
        _run_ray(cache, jobs, extractors, [other])


def test_workers_get_an_absolute_weights_dir_and_the_drivers_thread_count(tmp_path, monkeypatch):
    import torch

    from harmcache.extract.ray_engine import _portable

    monkeypatch.chdir(tmp_path)
    settings = ExtractSettings(weights=WeightsSource(weights_dir=Path("weights")))
    portable = _portable(settings)
    assert portable.weights.weights_dir == tmp_path / "weights"
    assert portable.cpu_threads == torch.get_num_threads() and settings.cpu_threads == 0
    pinned = ExtractSettings(cpu_threads=3, weights=WeightsSource(random_init=True))
    assert _portable(pinned) is pinned
