"""`import harmcache` is light and gives the library's public functions; the layers import
only downwards (heads and metrics never reach into the pipeline)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

import harmcache

PUBLIC = ["extract", "FeatureCache", "train", "load_run", "sweep_threshold", "evaluate",
          "compare", "predict", "review_queue"]  # fmt: skip


def imported_after(code: str) -> list[str]:
    """The modules a fresh interpreter holds after running `code`."""
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_all_lists_the_public_names():
    assert sorted(harmcache.__all__) == sorted(["__version__", *PUBLIC])
    assert isinstance(harmcache.__version__, str)
    assert set(PUBLIC) <= set(dir(harmcache))


@pytest.mark.parametrize("name", PUBLIC)
def test_each_public_name_has_a_docstring(name):
    if name == "extract" and importlib.util.find_spec("harmcache.extract.api") is None:
        pytest.skip("harmcache.extract.api is not written yet")
    value = getattr(harmcache, name)
    assert callable(value) and not isinstance(value, type(harmcache))
    assert value.__doc__ and value.__doc__.strip()


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match=r"module 'harmcache' has no attribute 'nope'"):
        harmcache.nope  # noqa: B018


def test_import_harmcache_stays_light():
    heavy = {"numpy", "torch", "sklearn", "h5py", "lightgbm", "harmcache.train"}
    assert heavy.isdisjoint(imported_after("import harmcache"))


def test_modules_named_like_public_functions_do_not_hide_them():
    code = (
        "import harmcache.train.rundir, harmcache.predict, harmcache.extract.pipeline\n"
        "import harmcache\n"
        "from harmcache.train.fit import train\n"
        "from harmcache.predict import predict\n"
        "assert harmcache.train is train and harmcache.predict is predict\n"
        "assert not isinstance(harmcache.__dict__.get('extract'), type(harmcache))"
    )
    imported_after(code)  # raises CalledProcessError if an assertion fails


@pytest.mark.parametrize(
    "module, forbidden",
    [
        ("harmcache.metrics", ("harmcache.",)),
        (
            "harmcache.heads.transformer, harmcache.heads.gbm, harmcache.heads.logreg",
            ("harmcache.train", "harmcache.store", "harmcache.extract", "harmcache.video"),
        ),
    ],
)
def test_layers_import_only_downwards(module, forbidden):
    allowed = {"harmcache", "harmcache.metrics", "harmcache.errors", "harmcache.options"}
    loaded = imported_after(f"import {module}")
    # The decision rule sits below metrics and the heads (tests/test_layers.py).
    leaks = [m for m in loaded if m.startswith(forbidden) and m not in allowed]
    leaks = [m for m in leaks if not m.startswith("harmcache.decisions")]
    leaks = [m for m in leaks if not m.startswith("harmcache.heads")]
    assert leaks == []
