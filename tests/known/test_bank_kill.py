"""A real `harmcache bank add` killed with SIGKILL mid-run: the bank opens with every segment
it committed, whole, and the rerun adds the rest without adding anything twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from harmcache.hashing import sha256_file
from harmcache.known.bank import HashBank
from harmcache.known.sources import media_entry
from tests.known.media import scene_video
from tests.running import last_json, ok

N_VIDEOS = 40


@pytest.mark.slow
def test_a_kill_during_bank_add_keeps_what_was_committed(tmp_path):
    videos = tmp_path / "videos"
    files = [scene_video(videos / f"v{i:02d}.mp4", [1000 + 2 * i, 1001 + 2 * i])
             for i in range(N_VIDEOS)]  # fmt: skip
    bank = tmp_path / "bank"
    cmd = [sys.executable, "-m", "harmcache.cli.main", "bank", "add", bank, videos,
           "--segment-frames", "1"]  # fmt: skip
    env = {**os.environ, "HARMCACHE_OFFLINE": "1"}
    child = subprocess.Popen(list(map(str, cmd)), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if len(list((bank / "segments").glob("seg-*.npz"))) >= 3:
            break
        time.sleep(0.01)
    assert child.poll() is None, f"bank add ended before it could be killed: {child.stderr.read()}"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    survived = HashBank(bank)
    committed = len(survived)
    assert 3 <= committed < N_VIDEOS
    assert survived.damaged == [] and len(survived.segments) == committed
    by_id = {sha256_file(f): f for f in files}
    for i in range(committed):
        entry = survived.table.entry(i)
        np.testing.assert_array_equal(entry.hashes, media_entry(by_id[entry.entry_id]).hashes)

    rerun = last_json(ok("bank", "add", bank, videos, "--json"))
    assert (rerun["added"], rerun["skipped"]) == (N_VIDEOS - committed, committed)
    final = HashBank(bank)
    assert sorted(final.table.ids) == sorted(by_id)
    assert final.table.frames == sum(len(media_entry(f)) for f in files)
