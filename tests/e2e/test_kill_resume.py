"""A real `harmcache extract` subprocess killed with SIGKILL mid-run, then resumed."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harmcache.store.cache import FeatureCache
from harmcache.video.encode import write_video
from tests.conftest import coded_frames

N_VIDEOS = 10
ARGS = [
    "--random-init",
    "--frames",
    "4",
    "--yolo-imgsz",
    "64",
    "--extractors",
    "clip,yolo",
    "--shard-size",
    "1",
    "--workers",
    "1",
    "--device",
    "cpu",
]


def harmcache(*args) -> list[str]:
    return [sys.executable, "-m", "harmcache.cli.main", *map(str, args)]


def child_pids(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if Path(f"/proc/{p}").exists()]
        if not alive:
            return True
        time.sleep(0.1)
    return False


def shard_hashes(cache: Path) -> dict[str, str]:
    return {
        str(p.relative_to(cache)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (cache / "features").glob("*/shard-*.h5")
    }


def all_features(cache: Path) -> dict[tuple[str, str], tuple]:
    out = {}
    with FeatureCache(cache) as store:
        for fam in store.families():
            for vid, v in store.load(fam).items():
                out[(fam.name, vid)] = (v.record.features, v.record.frame_index, v.record.timestamp)
    return out


@pytest.mark.slow
def test_sigkill_mid_run_loses_nothing_committed_and_resume_equals_clean_run(tmp_path):
    videos = tmp_path / "videos"
    for i in range(N_VIDEOS):
        write_video(videos / f"v{i:02d}.mp4", coded_frames(16, seed=i), fps=8)
    env = {**os.environ, "YOLO_OFFLINE": "1", "HARMCACHE_OFFLINE": "1"}

    clean = tmp_path / "clean"
    subprocess.run(
        harmcache("extract", videos, "--out", clean, *ARGS),
        env=env,
        check=True,
        capture_output=True,
    )

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        harmcache("extract", videos, "--out", killed, *ARGS),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while len(shard_hashes(killed)) < 3:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    workers = child_pids(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = shard_hashes(killed)
    assert 3 <= len(before) < 2 * N_VIDEOS, "the kill did not land mid-run"
    assert workers, "the run had no decode worker to orphan"
    assert wait_gone(workers, timeout=10), "decode workers outlived their killed parent"

    resumed = subprocess.run(
        harmcache("extract", videos, "--out", killed, *ARGS, "--json"),
        env=env,
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    after = shard_hashes(killed)
    assert {k: after[k] for k in before} == before, "a shard committed before the kill changed"

    reference, got = all_features(clean), all_features(killed)
    assert got.keys() == reference.keys() and len(got) == 2 * N_VIDEOS
    for key, arrays in reference.items():
        for a, b in zip(arrays, got[key]):
            assert np.array_equal(a, b), key

    verify = subprocess.run(
        harmcache("cache", "verify", killed), env=env, capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stderr
