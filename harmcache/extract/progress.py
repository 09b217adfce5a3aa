"""How a run reports progress. The library logs; the CLI plugs in a progress bar."""

from __future__ import annotations

import logging

from harmcache.extract.summary import InputResult
from harmcache.paths import shown

log = logging.getLogger("harmcache.extract")


class Progress:
    """Default sink: one log line per video (what a non-terminal run shows)."""

    def hashing(self, done: int, total: int) -> None:
        """Inputs identified so far while planning, of `total` (only files not in the memo are
        read and hashed; planning logs how many were)."""

    def start(self, total: int, cached: int) -> None:
        log.info("%d video(s) to extract, %d already cached", total, cached)

    def advance(self, result: InputResult) -> None:
        if result.status == "failed":
            where, why = shown(result.path), shown(result.message or "")
            log.warning("failed %s: %s (%s)", where, result.reason, why)
        elif result.status == "cached":  # a rerun's million cached inputs: `--verbose` lists them
            log.debug("cached %s", shown(result.path))
        else:
            log.info("%s %s", result.status, shown(result.path))

    def position(self, path: str, seconds_done: float, seconds_total: float) -> None:
        """How far the models are into a long video (one decode chunk at a time)."""
        log.debug("%s: %.0f of %.0f s", shown(path), seconds_done, seconds_total)

    def close(self) -> None:
        pass
