"""Sound decoded in a guarded child process: a decoder that really crashes its process (a
segfault, an abort, an exit) costs that file's audio family and nothing else, the next file
gets a new decoder, a long track streams through in blocks, and the child never outlives its
parent. End to end: 7.1 sound tracks (AAC, Opus, PCM) through `harmcache extract` on every
engine a user can pick."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import harmcache.video.audio_child as audio_child
from harmcache.errors import VideoError
from harmcache.store.cache import FeatureCache
from harmcache.video.audio import read_audio
from harmcache.video.audio_child import AudioChild
from tests import REPO
from tests.cli.test_extract import TINY, cli
from tests.video.test_audio import sound_video, surround_video, tone

HERE = "tests.video.test_audio_child"


# --- readers the child runs in place of read_audio (imported there by name) -----------------
def crash_on_marked(path, *, end=None, block=16000):
    """`read_audio`, except that a file named crash-<how>.* ends the child's process for real."""
    how = Path(path).stem.removeprefix("crash-")
    if Path(path).stem.startswith("crash-"):
        yield np.zeros(block, np.float32)  # the crash comes mid-track, after a block was sent
        if how == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        elif how == "abort":
            os.abort()
        elif how == "exit":
            os._exit(3)
        elif how == "raise":
            raise KeyError("no such codec table entry")
        elif how == "oom":
            raise MemoryError
    yield from read_audio(path, end=end, block=block)


def endless(path, *, end=None, block=16000):
    """A sound track that never ends: only a reader that streams can take any of it."""
    n = 0
    while True:
        yield np.full(block, n, np.float32)
        n += 1


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return sound_video(tmp_path_factory.mktemp("good") / "good.mp4", np.stack([tone(2.0)] * 2))


@pytest.fixture
def child():
    decoder = AudioChild(reader=f"{HERE}:crash_on_marked")
    yield decoder
    decoder.close()


def pid(decoder: AudioChild) -> int:
    return decoder._process.pid


# --- the guard -------------------------------------------------------------------------------
def test_the_child_gives_the_same_samples_as_decoding_here(child, good):
    for block in (1000, 16000):
        here = list(read_audio(good, block=block))
        there = list(child.read(good, block=block))
        assert len(there) == len(here)
        for a, b in zip(there, here):
            assert a.dtype == np.float32 and np.array_equal(a, b)
    assert np.array_equal(
        np.concatenate(list(child.read(good, end=1.0))),
        np.concatenate(list(read_audio(good, end=1.0))),
    )


@pytest.mark.parametrize(
    "how, message",
    [
        ("segv", r"the audio decoder crashed \(SIGSEGV\)"),
        ("abort", r"the audio decoder crashed \(SIGABRT\)"),
        ("exit", r"the audio decoder exited with code 3"),
    ],
)
def test_a_decoder_that_kills_its_process_fails_only_that_file(child, good, tmp_path, how, message):
    crash = tmp_path / f"crash-{how}.mp4"
    crash.write_bytes(good.read_bytes())
    first = len(list(child.read(good)))
    before = pid(child)
    blocks = child.read(crash)
    assert len(next(blocks)) == 16000  # what came before the crash still arrived
    with pytest.raises(VideoError, match=message) as caught:
        list(blocks)
    assert caught.value.reason == "audio_error"
    assert child._process is None  # the dead child was reaped
    assert len(list(child.read(good))) == first  # the next file gets a new child
    assert pid(child) != before


def test_a_reader_error_crosses_as_it_would_in_process(child, good, tmp_path):
    for how, error, message in (
        ("raise", RuntimeError, r"the audio decoder raised KeyError: 'no such codec"),
        ("oom", MemoryError, "out of memory"),
    ):
        path = tmp_path / f"crash-{how}.mp4"
        path.write_bytes(good.read_bytes())
        with pytest.raises(error, match=message):
            list(child.read(path))
    broken = tmp_path / "junk.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(VideoError, match="cannot open the file for its sound") as caught:
        list(child.read(broken))
    assert caught.value.reason == "audio_error"
    before = pid(child)
    list(child.read(good))
    assert pid(child) == before  # an error the reader raised does not cost the child


def test_a_long_track_streams_and_stopping_early_stops_the_child(good):
    decoder = AudioChild(reader=f"{HERE}:endless")
    try:
        blocks = decoder.read(good, block=100_000)
        taken = [next(blocks) for _ in range(3)]  # an endless track: nothing waits for its end
        assert [float(b[0]) for b in taken] == [0.0, 1.0, 2.0]
        process = decoder._process
        blocks.close()
        assert process.poll() is not None  # the child was mid-track: it is ended, not drained
        again = decoder.read(good, block=10)
        assert float(next(again)[0]) == 0.0  # the next file starts on a new child
        again.close()
    finally:
        decoder.close()


def test_a_read_left_unclosed_does_not_leak_into_the_next(good):
    decoder = AudioChild(reader=f"{HERE}:endless")
    try:
        stale = decoder.read(good, block=10)
        next(stale)  # abandoned but still referenced: its blocks must not reach the next read
        fresh = decoder.read(good, block=10)
        assert [float(next(fresh)[0]) for _ in range(2)] == [0.0, 1.0]
        with pytest.raises(VideoError, match="restarted"):
            list(stale)
        assert float(next(fresh)[0]) == 2.0  # the stale read's end did not stop the new child
        fresh.close()
    finally:
        decoder.close()


def test_the_child_ends_with_its_parent(good, tmp_path):
    """A parent killed with SIGKILL cannot stop its child: the child sees its socket close."""
    script = (
        "import sys\n"
        "from harmcache.video.audio_child import AudioChild\n"
        f"decoder = AudioChild(reader='{HERE}:endless')\n"
        f"blocks = decoder.read({str(good)!r}, block=100_000)\n"
        "next(blocks)\n"
        "print(decoder._process.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        child_pid = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(child_pid):
            time.sleep(0.05)
        assert not _alive(child_pid)
    finally:
        if parent.poll() is None:
            parent.kill()


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, exited but not yet reaped by init, counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


# --- end to end ------------------------------------------------------------------------------
SURROUND = {
    "aac71.mp4": ("7.1", "aac"),
    "opus71.mkv": ("7.1", "libopus"),
    "pcm71.mov": ("7.1", "pcm_s16le"),  # QuickTime keeps 7.1 in a custom channel order
    "pcm71.mkv": ("7.1", "pcm_s16le"),
    "stereo.mp4": ("stereo", "aac"),
}


@pytest.fixture(scope="module")
def surround(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("surround")
    for name, (layout, codec) in SURROUND.items():
        surround_video(folder / name, layout, codec)
    return folder


def extract(folder: Path, out: Path, way: str, *more: str):
    flags = TINY if way == "workers0" else [a for a in TINY if a not in ("--workers", "0")]
    extra = ["--engine", "ray"] if way == "ray" else []
    args = ("extract", folder, "--out", out, "--json", "--extractors", "clip,audio")
    result = cli(*args, *flags, *extra, *more)
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])


def audio_rows(out: Path) -> dict[str, int]:
    with FeatureCache(out) as cache:
        family = next(f for f in cache.families() if f.extractor == "audio")
        ids = {Path(p).name: v for p, v in cache.sources().items()}
        loaded = cache.load(family, sorted(cache.committed(family)))
        return {
            name: len(loaded[vid].record.features) for name, vid in ids.items() if vid in loaded
        }


@pytest.mark.parametrize(
    "way", ["default", "workers0", pytest.param("ray", marks=pytest.mark.slow)]
)
def test_7_1_sound_is_extracted_on_every_engine(surround, tmp_path, way):
    if way == "ray":
        pytest.importorskip("ray")
    code, summary = extract(surround, tmp_path / "cache", way)
    assert code == 0
    assert {Path(r["path"]).name: r["status"] for r in summary["inputs"]} == {
        name: "extracted" for name in SURROUND
    }
    rows = audio_rows(tmp_path / "cache")
    assert set(rows) == set(SURROUND)
    assert all(count == 1 for count in rows.values()), rows  # one second: one example each


@pytest.mark.parametrize("way", ["default", "workers0"])
def test_a_crashing_audio_decoder_costs_one_file_its_audio_not_the_run(
    surround, tmp_path, monkeypatch, way
):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("stereo.mp4", "aac71.mp4"):
        (folder / name).write_bytes((surround / name).read_bytes())
    (folder / "crash-segv.mp4").write_bytes((surround / "stereo.mp4").read_bytes() + b"\0")
    decoder = AudioChild(reader=f"{HERE}:crash_on_marked")
    monkeypatch.setattr(audio_child, "_shared", decoder)
    try:
        code, summary = extract(folder, tmp_path / "cache", way)
    finally:
        decoder.close()
    assert code == 0
    status = {Path(r["path"]).name: (r["status"], r["reason"]) for r in summary["inputs"]}
    assert status == {
        "stereo.mp4": ("extracted", None),
        "aac71.mp4": ("extracted", None),
        "crash-segv.mp4": ("failed", "audio_error"),
    }
    (crashed,) = [r for r in summary["inputs"] if r["status"] == "failed"]
    assert "the audio decoder crashed (SIGSEGV)" in crashed["message"]
    assert set(audio_rows(tmp_path / "cache")) == {"stereo.mp4", "aac71.mp4"}
    with FeatureCache(tmp_path / "cache") as cache:
        clip = next(f for f in cache.families() if f.extractor == "clip")
        assert len(cache.committed(clip)) == 3  # the crashed file's picture still counts
