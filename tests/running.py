"""How tests run harmcache: the command line in process (typer's CliRunner) or as the installed
console script, the last JSON line of its output, and the smallest extraction settings that still
run the real YOLO, CLIP and SlowFast architectures (random-init, 64-pixel inputs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from harmcache.cli.main import app
from typer.testing import CliRunner, Result

from harmcache.extractors.base import ExtractSettings, WeightsSource

REPO = Path(__file__).resolve().parent.parent
HARMCACHE = Path(sys.executable).with_name("harmcache")
"""The installed console script, as a user runs it."""


def tiny_flags(frames: int = 2, windows: int = 1, **more: object) -> list[str]:
    """`harmcache extract` flags for the smallest real models: random-init, 64-pixel YOLO and
    SlowFast inputs, on the CPU. `more` adds flags: `workers=0` gives `--workers 0`."""
    flags = ["--random-init", "--frames", str(frames), "--windows", str(windows)]
    flags += ["--yolo-imgsz", "64", "--slowfast-short-side", "64", "--slowfast-crop", "64"]
    flags += ["--device", "cpu"]
    for name, value in more.items():
        flags += [f"--{name.replace('_', '-')}", str(value)]
    return flags


TINY_FLAGS = tiny_flags()
TINY_SETTINGS = ExtractSettings(
    frames=2,
    windows=1,
    yolo_imgsz=64,
    slowfast_short_side=64,
    slowfast_crop=64,
    weights=WeightsSource(random_init=True),
)
"""The same smallest settings, for tests that build extractors directly."""


def invoke(*args: object) -> Result:
    """`harmcache ARGS` in process. A traceback (an exception other than the exit) fails the
    test: every error must reach the user as one line and an exit code."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args,
        result.exception,
    )
    return result


def ok(*args: object) -> Result:
    """`invoke`, which must exit 0."""
    result = invoke(*args)
    assert result.exit_code == 0, (args, result.output)
    return result


def installed(
    *args: object, cwd: Path | None = None, timeout: float = 900, **kwargs
) -> subprocess.CompletedProcess:
    """The installed `harmcache` command in a subprocess, as a user runs it."""
    env = kwargs.pop("env", None) or dict(os.environ)
    return subprocess.run(
        [str(HARMCACHE), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        **kwargs,
    )


def last_json(result: Result | subprocess.CompletedProcess) -> dict:
    """The JSON object on the last line of stdout (`--json`)."""
    return json.loads(result.stdout.strip().splitlines()[-1])
