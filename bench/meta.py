"""What every benchmark result records about itself: the commit it measured and the machine."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def git_commit() -> dict:
    """The measured commit, and whether the working tree differed from it (then the figures
    belong to uncommitted code and say so)."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return out.stdout.strip()

    # Results are not measured code, and a run of every benchmark rewrites them as it goes.
    changed = git("diff", "--name-only", "HEAD", "--", ".", ":(exclude)bench/results").splitlines()
    return {
        "commit": git("rev-parse", "HEAD") or None,
        "dirty": bool(changed),
        # Which tracked files differ, so a reader can tell whether the change touched the code
        # measured or only, say, the docs.
        "dirty_files": changed,
    }


def run_metadata() -> dict:
    """The `meta` block of every result: commit, dirty tree, time, machine, device, Python."""
    try:
        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except ImportError:
        device = "cpu"
    return {
        **git_commit(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "device": device,
        "python": sys.version.split()[0],
    }
