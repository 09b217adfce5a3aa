"""The layers point one way. Every module's imports (top-level and inside functions) are read
from its source and checked against this table: a plug-in head never reaches into training,
the store never learns about backbones or decoding, the leaf types import nothing above them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "harmcache"

LEAVES = {
    "errors",
    "types",
    "hashing",
    "metrics",
    "provenance",
    "guarantee",
    "calibration",
    "threads",
    "paths",
    "log_streams",
}
ALLOWED: dict[str, set[str]] = {
    **{leaf: {"errors"} for leaf in LEAVES},
    "video": LEAVES,
    "store": LEAVES,
    "heads": LEAVES,
    "extractors": LEAVES | {"video"},
    "extract": LEAVES | {"video", "store", "extractors"},
    "train": LEAVES | {"store", "heads"},
    "demo": LEAVES | {"video"},
    "predict": LEAVES | {"video", "store", "extractors", "extract", "heads", "train"},
}
"""Layer → the layers it may import (besides itself and the lazy top-level package)."""


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "harmcache" or len(parts) == 1:
        return None
    return parts[1]


def imported_layers(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "harmcache":  # `from harmcache import metrics`
                names = [f"harmcache.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {layer for layer in map(layer_of, names) if layer}
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] != "cli")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_lower_layers(path):
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts == ("__init__",):
        return  # the lazy public API, checked below
    layer = parts[0]
    assert layer in ALLOWED, f"{layer} is not placed in the layer table"
    upward = imported_layers(path) - ALLOWED[layer] - {layer}
    assert not upward, f"harmcache.{layer} imports {sorted(upward)}"


def test_the_package_root_imports_nothing_eagerly():
    assert imported_layers(PACKAGE / "__init__.py") == set()
