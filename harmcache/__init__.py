"""harmcache: extract video backbone features once; iterate on harmful-video heads from cache.

The library in a few calls (see docs/python-api.md):

    extract(inputs, out, ...)          stage one: videos → a feature cache (HDF5 shards)
    FeatureCache(path)                 read a cache: families, videos, features
    train(cache, labels, head, out)    stage two: labels + cache → a run directory
    load_run(run_dir)                  a run back: its config, split, head and threshold
    sweep_threshold(run_dir, ...)      choose the run's decision threshold again
    evaluate(run_dir, ...)             metrics at the run's threshold
    compare(run_dirs)                  runs side by side
    predict(videos, run_dir, ...)      score new videos (extracting them with the run's specs)
    review_queue(run_dir, ...)         what a run would remove or review, over a whole cache

The names are imported on first use, so `import harmcache` stays light. `extract`, `train` and
`predict` are also the names of modules (`harmcache/extract/`, `harmcache/train/`,
`harmcache/predict.py`); here they always mean the functions. Reach those modules with
`from harmcache.train.rundir import Run`, not through attributes of `harmcache`.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "extract": "harmcache.extract.api:extract",
    "FeatureCache": "harmcache.store.cache:FeatureCache",
    "train": "harmcache.train.fit:train",
    "load_run": "harmcache.train.rundir:load_run",
    "sweep_threshold": "harmcache.train.sweep_run:sweep_threshold",
    "evaluate": "harmcache.train.evaluate:evaluate",
    "compare": "harmcache.train.evaluate:compare",
    "predict": "harmcache.predict:predict",
    "review_queue": "harmcache.queue:review_queue",
}
"""public name → "module:attribute"."""

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562)."""
    try:
        module, attribute = _PUBLIC[name].split(":")
    except KeyError:
        raise AttributeError(f"module 'harmcache' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


class _Package(types.ModuleType):
    """Importing `harmcache.train` (the package) would bind it here as `harmcache.train`,
    hiding the function of that name; keep the functions."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _PUBLIC and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
