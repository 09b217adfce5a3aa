"""Console handlers follow the current stderr across in-process commands."""

from __future__ import annotations

import io
import logging
import sys

from harmcache.log_streams import follow_stderr


def test_a_handler_left_on_a_closed_stderr_follows_the_new_one(monkeypatch):
    first, second = io.StringIO(), io.StringIO()
    logger = logging.getLogger("ray.data.test-follow")
    handler = logging.StreamHandler(first)
    logger.addHandler(handler)
    try:
        first.close()  # the first command's captured stderr, gone
        monkeypatch.setattr(sys, "stderr", second)
        follow_stderr("ray")
        logger.warning("after the swap")
        assert handler.stream is second
        assert "after the swap" in second.getvalue()
    finally:
        logger.removeHandler(handler)


def test_an_open_stream_is_left_alone(monkeypatch):
    kept = io.StringIO()
    handler = logging.StreamHandler(kept)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        monkeypatch.setattr(sys, "stderr", io.StringIO())
        follow_stderr()
        assert handler.stream is kept
    finally:
        root.removeHandler(handler)
