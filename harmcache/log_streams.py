"""Console log handlers that follow the current stderr.

A logging handler keeps the stream it was given. A caller that runs commands in-process and
captures their output (a notebook, a test runner) swaps `sys.stderr` for each command and
closes it afterwards, so a handler set up during one command (harmcache's own, or Ray's) would
write into a closed stream during the next and print a "Logging error" traceback.
"""

from __future__ import annotations

import logging
import sys


def follow_stderr(*prefixes: str) -> None:
    """Point every console handler whose stream is closed at this moment's stderr: the root
    logger's (no prefix) and those of the loggers named `prefix` or `prefix.*`."""
    names = [""] if not prefixes else []
    for prefix in prefixes:
        names.append(prefix)
        names += [n for n in logging.Logger.manager.loggerDict if n.startswith(prefix + ".")]
    for name in names:
        for handler in logging.getLogger(name or None).handlers:
            if isinstance(handler, logging.FileHandler) or not isinstance(
                handler, logging.StreamHandler
            ):
                continue
            if getattr(handler.stream, "closed", False):
                with handler.lock:  # not setStream: it flushes the old stream, which is closed
                    handler.stream = sys.stderr
