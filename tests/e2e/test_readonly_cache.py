"""A shared cache on a read-only mount still serves stage two and inspection; anything that must
write says so in one line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.running import invoke as cli
from tests.running import tiny_flags

EXTRACT = tiny_flags(frames=4)


def ok(*args):
    result = cli(*args)
    assert result.exit_code == 0, (args, result.output)
    return result


def one_line_error(result, code: int, pattern: str) -> None:
    assert result.exit_code == code, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and pattern in line, line


@pytest.fixture
def read_only(tmp_path):
    """read_only(folder) -> the same folder seen through a read-only bind mount (as root), or
    with its write permissions taken away (as any other user)."""
    mounts: list[Path] = []
    chmodded: list[Path] = []

    def make(folder: Path) -> Path:
        if os.geteuid() != 0:
            for p in [folder, *folder.rglob("*")]:
                p.chmod(p.stat().st_mode & ~0o222)
            chmodded.append(folder)
            return folder
        target = tmp_path / f"ro-{folder.name}"
        target.mkdir()
        try:
            subprocess.run(["mount", "--bind", str(folder), str(target)], check=True)
            mounts.append(target)
            subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True)
        except (OSError, subprocess.CalledProcessError):
            pytest.fail("root but cannot bind-mount read-only here")
        return target

    yield make
    for target in mounts:
        subprocess.run(["umount", str(target)], check=False)
    for folder in chmodded:
        for p in [folder, *folder.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)


@pytest.mark.slow
def test_stage_two_and_inspection_work_on_a_read_only_cache(tmp_path, read_only):
    videos, cache, runs = tmp_path / "videos", tmp_path / "cache", tmp_path / "runs"
    ok("demo-data", videos, "--n-safe", "4", "--seed", "2", "--n-long", "0")
    ok("extract", videos, "--out", cache, *EXTRACT)
    labels = videos / "labels.csv"
    ro = read_only(cache)
    with pytest.raises(OSError):
        (ro / "probe").write_text("x")  # the mount really refuses writes

    ok("cache", "info", ro)
    assert "read-only" in ok("cache", "info", ro).stdout
    assert (
        json.loads(ok("cache", "info", ro, "--json").stdout.splitlines()[-1])["writable"] is False
    )
    ok("cache", "verify", ro)
    ok("train", "--cache", ro, "--labels", labels, "--head", "logreg", "--out", runs / "a")
    ok("train", "--cache", ro, "--labels", labels, "--head", "lightgbm", "--out", runs / "b",
       "--split-from", runs / "a")  # fmt: skip
    ok("sweep-threshold", runs / "a")
    ok("evaluate", runs / "a")
    ok("compare", runs / "a", runs / "b")

    cached = sorted(videos.rglob("*.mp4"))[0]
    scored = ok("predict", cached, "--run", runs / "a", "--cache", ro, "--json")
    (pred,) = json.loads(scored.stdout.splitlines()[-1])["predictions"]
    assert pred["status"] == "scored"

    new = tmp_path / "new.mp4"
    shutil.copy(cached, new)
    with open(new, "ab") as f:
        f.write(b"\0")  # other bytes, so a video the cache has never seen
    one_line_error(
        cli("predict", new, "--run", runs / "a", "--cache", ro), 4, "is read-only and 1 video(s)"
    )
    one_line_error(cli("cache", "gc", ro), 4, "is read-only")
    one_line_error(cli("cache", "reindex", ro), 4, "is read-only")
    one_line_error(cli("cache", "compact", ro), 4, "is read-only")
    one_line_error(cli("extract", videos, "--out", ro, *EXTRACT), 2, "is not writable")
