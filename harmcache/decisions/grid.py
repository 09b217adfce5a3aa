"""The candidate thresholds of a sweep: the default grid, and --grid text."""

from __future__ import annotations

import numpy as np

from harmcache.errors import UsageError

DEFAULT_GRID = "0.01:0.99:0.01"
"""The sweep's grid when none is given; also the fixed grid a certified precision target tests."""


def parse_grid(text: str, scores) -> np.ndarray:
    """'start:stop:step' (inclusive), a comma list, or 'scores' (every distinct score)."""
    t = text.strip().lower()
    if t == "scores":
        return np.unique(np.asarray(scores, dtype=np.float64))
    try:
        if ":" in t:
            start, stop, step = (float(x) for x in t.split(":"))
            if step <= 0 or stop < start:
                raise ValueError
            decimals = max(len(p.split(".")[1]) if "." in p else 0 for p in t.split(":"))
            grid = np.round(np.arange(start, stop + step / 2, step), decimals + 2)
        else:
            grid = np.unique([float(x) for x in t.split(",")])
    except ValueError:
        raise UsageError(
            f"--grid {text!r}: use start:stop:step (e.g. {DEFAULT_GRID}), a comma list, or scores"
        ) from None
    return np.unique(grid)


DEFAULT_THRESHOLDS = parse_grid(DEFAULT_GRID, [])
"""0.01, 0.02, ..., 0.99."""
