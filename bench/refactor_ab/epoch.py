"""One TransformerHead epoch on 1,500 random videos on one torch thread, in the tree this runs
from (run it from an old checkout, then from this one, alternately):

    python bench/refactor_ab/epoch.py LABEL
"""

import sys
import time

import numpy as np
import torch

from harmcache.heads.data import Modality, SequenceData
from harmcache.heads.transformer import TransformerHead

WIDTHS = {"clip": (32, 512), "yolo": (32, 86), "slowfast": (4, 2304)}
"""Rows and width per modality, as the default extraction caches them."""


def main(label: str, n: int = 1500) -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    modalities = {}
    for name, (rows, width) in WIDTHS.items():
        stamps = np.tile(np.linspace(0, 10, rows, dtype=np.float32), (n, 1))
        values = rng.normal(size=(n, rows, width)).astype(np.float32)
        modalities[name] = Modality(values, np.ones((n, rows), bool), stamps, stamps / 10)
    labels = (rng.random(n) < 0.3).astype(np.int64)
    data = SequenceData([f"v{i}" for i in range(n)], modalities, labels, np.full(n, 10.0))
    reports = []
    start = time.perf_counter()
    val = data.subset(np.arange(200))
    TransformerHead(epochs=1).fit(data, eval_set=val, on_epoch=reports.append)
    print(f"{label} fit {time.perf_counter() - start:.2f} epoch {reports[0].seconds:.2f}")


if __name__ == "__main__":
    main(sys.argv[1])
