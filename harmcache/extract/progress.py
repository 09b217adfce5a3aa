"""How a run reports progress. The library logs; the CLI plugs in a progress bar."""

from __future__ import annotations

import logging

from harmcache.extract.summary import InputResult

log = logging.getLogger("harmcache.extract")


class Progress:
    """Default sink: one log line per video (what a non-terminal run shows)."""

    def start(self, total: int, cached: int) -> None:
        log.info("%d video(s) to extract, %d already cached", total, cached)

    def advance(self, result: InputResult) -> None:
        if result.status == "failed":
            log.warning("failed %s: %s (%s)", result.path, result.reason, result.message)
        else:
            log.info("%s %s", result.status, result.path)

    def close(self) -> None:
        pass
