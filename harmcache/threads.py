"""torch's intra-op thread count, fixed for a block of work.

On the CPU the thread count changes float results (measured here: CLIP features differ by up to
2e-6 between 1 and 2 threads), so work that must be bit-reproducible runs under a fixed count,
whatever process runs it: a Ray actor starts with one thread, a local run with one per core.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` intra-op threads (None or 0: leave the count alone)."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
