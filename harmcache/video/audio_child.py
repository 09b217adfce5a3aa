"""The sound track decoded in a guarded child process, as video is decoded in worker processes.

A decoder that crashes (a segfault or an abort inside FFmpeg or PyAV) takes down the process it
runs in. Each process that extracts audio therefore keeps one child, started the first time it
needs one (`python -m harmcache.video.audio_child`, a fresh interpreter, as multiprocessing's
spawn would start it), that decodes one file's sound at a time and sends its 16 kHz mono blocks
back over a socket. If the child dies, that file's sound fails with `audio_error` and the next
file gets a new child.

Memory stays bounded: the child sends each block as it is made and waits until the reader has
taken it, so at most a block or two of a long video's sound is in flight. The reader's model
step overlaps the child's decoding. The samples are `read_audio`'s, bit for bit: they are made
by the same function and only copied across.

The child ends with the process that started it: it reads its requests from the socket and
sees end of file once that process is gone, however it died.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from harmcache.errors import VideoError
from harmcache.video.audio import SAMPLE_RATE

log = logging.getLogger(__name__)

READER = "harmcache.video.audio:read_audio"
"""The function the child runs for each file, as `module:name`."""
EXIT_WAIT_S = 10.0
"""How long a child whose socket closed may take to exit before it is killed."""


class AudioChild:
    """One child process that decodes sound tracks, one file at a time, restarted when it dies.

    `reader`: the `module:name` of the function the child runs for each file, called as
    `reader(path, end=..., block=...)` and yielding sample blocks (`read_audio`; tests give one
    that crashes)."""

    def __init__(self, reader: str = READER):
        self.reader = reader
        self._process: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._reading: Connection | None = None
        """The connection of the read in progress, if any."""
        self._lock = threading.Lock()

    def read(
        self, path: str | Path, *, end: float | None = None, block: int = SAMPLE_RATE
    ) -> Iterator[np.ndarray]:
        """`read_audio(path, end=end, block=block)`, decoded in the child. Raises
        `VideoError('audio_error', ...)` when the stream cannot be decoded or the child died
        decoding it."""
        with self._lock:
            if self._reading is not None:  # a read left unfinished and unclosed: start afresh
                self._stop()
            conn = self._reading = self._request((os.fspath(path), end, block))
        finished = False
        try:
            while True:
                try:
                    kind, *payload = conn.recv()
                except (EOFError, OSError):
                    finished = True
                    raise self._died(conn) from None
                if kind == "block":
                    yield payload[0]
                    continue
                finished = True
                if kind == "done":
                    return
                if kind == "error":
                    raise payload[0]
                if kind == "oom":
                    raise MemoryError(payload[0])
                raise RuntimeError(f"the audio decoder raised {payload[0]}: {payload[1]}")
        finally:
            with self._lock:
                if self._reading is conn:
                    self._reading = None
                    if not finished:  # the reader stopped early: the child is still sending
                        self._stop()

    def close(self) -> None:
        """End the child (a later read starts a new one)."""
        with self._lock:
            self._stop()

    def _request(self, request: tuple) -> Connection:
        """Send a request to a live child, starting one if there is none or it has died (a
        child that dies between two files is replaced: nothing of this file was read yet)."""
        for _ in range(2):
            if self._process is None or self._process.poll() is not None:
                self._stop()
                self._start()
            try:
                self._conn.send(request)
                return self._conn
            except OSError:
                self._stop()
        raise VideoError("audio_error", "the audio decoder process could not be started")

    def _start(self) -> None:
        mine, theirs = socket.socketpair()
        # The child sees the modules this process sees (multiprocessing's spawn does the same).
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p or ".") for p in sys.path)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno()), self.reader],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # never mixed into what the command prints
                env=env,
            )
        finally:
            theirs.close()  # else the child's death would not close the socket here
        self._conn = Connection(mine.detach())
        log.debug("audio decoder process %d started", self._process.pid)

    def _died(self, conn: Connection) -> VideoError:
        """The error for a file whose decoding ended the child, which is gone after this."""
        with self._lock:
            if conn is not self._conn:  # another read replaced this one's child
                return VideoError("audio_error", "the audio decoder was restarted mid-file")
            code = None
            try:
                code = self._process.wait(timeout=EXIT_WAIT_S)
            except subprocess.TimeoutExpired:
                pass
            self._reading = None
            self._stop()
        if code is None:
            how = "stopped answering"
        elif code < 0:
            how = f"crashed ({_signal_name(-code)})"
        else:
            how = f"exited with code {code}"
        return VideoError("audio_error", f"the audio decoder {how} while decoding this file")

    def _stop(self) -> None:
        """End the child, if there is one (the caller holds the lock)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


_shared: AudioChild | None = None
_shared_lock = threading.Lock()


def read_audio_isolated(
    path: str | Path, *, end: float | None = None, block: int = SAMPLE_RATE
) -> Iterator[np.ndarray]:
    """`read_audio`, decoded in this process's audio child (started on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = AudioChild()
            atexit.register(_shared.close)
    return _shared.read(path, end=end, block=block)


# --- runs in the child ---------------------------------------------------------------------
def serve(conn: Connection, reader) -> None:
    """Answer requests until the other end closes: each file's blocks, then how it ended."""
    while True:
        try:
            path, end, block = conn.recv()
        except EOFError:
            return
        try:
            for samples in reader(path, end=end, block=block):
                conn.send(("block", samples))
        except VideoError as exc:
            conn.send(("error", exc))
        except MemoryError as exc:
            conn.send(("oom", str(exc) or "out of memory while decoding the sound track"))
        except Exception as exc:  # noqa: BLE001 - re-raised in the reader's process
            log.debug("the audio reader raised on %s", path, exc_info=True)
            conn.send(("raised", type(exc).__name__, str(exc)))
        else:
            conn.send(("done",))


def _load(reader: str):
    module, name = reader.split(":")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str]) -> None:
    # Ctrl-C reaches the whole process group: the parent handles it and closes the socket.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(int(argv[0]))
    try:
        serve(conn, _load(argv[1]))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the parent stopped reading or is gone


if __name__ == "__main__":
    main(sys.argv[1:])
