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
    "provenance",
    "calibration",
    "threads",
    "paths",
    "log_streams",
    "options",
    "user_files",
}
DECIDING = LEAVES | {"decisions", "metrics"}
"""Scores into decisions (`decisions`), and the metrics counted with its rule (`metrics`)."""
ALLOWED: dict[str, set[str]] = {
    **{leaf: {"errors"} for leaf in LEAVES},
    "decisions": LEAVES,
    "metrics": LEAVES | {"decisions"},
    "video": LEAVES,
    "store": LEAVES,
    "heads": DECIDING,
    "known": LEAVES | {"video", "store"},
    "extractors": LEAVES | {"video", "known"},
    "extract": LEAVES | {"video", "store", "extractors"},
    "train": DECIDING | {"store", "heads", "known"},
    "demo": LEAVES | {"video"},
    "demo_multi": LEAVES | {"video", "demo"},
    "predict": DECIDING
    | {"video", "store", "extractors", "extract", "heads", "train", "verdicts", "known"},
    "verdicts": DECIDING | {"store", "heads", "train"},
    "prompting": LEAVES | {"extractors", "video", "store"},
    "queue": DECIDING | {"store", "heads", "train", "verdicts"},
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


# --- one owner per concept --------------------------------------------------------------------

SOURCES = {
    p: p.read_text(encoding="utf-8")
    for p in [*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "cli").rglob("*.py")]
}


def _outside(folder: str) -> dict[Path, str]:
    return {p: text for p, text in SOURCES.items() if folder not in p.parts}


def test_one_objective_class():
    defining = sorted(
        str(p.relative_to(PACKAGE.parent))
        for p, text in SOURCES.items()
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.ClassDef) and node.name == "Objective"
    )
    assert defining == ["harmcache/decisions/objective.py"]


def _mentions_threshold(node: ast.AST) -> bool:
    text = ast.unparse(node).lower()
    return "threshold" in text or text in {"t", "thr", "t_high", "t_low", "cut"}


def _mentions_score(node: ast.AST) -> bool:
    text = ast.unparse(node).lower()
    return "score" in text or "proba" in text or "harmful" in text or text in {"s", "p"}


def test_scores_meet_thresholds_only_in_the_decisions_module():
    """A comparison of a score with a threshold, anywhere but harmcache/decisions/, would be a
    second copy of the decision rule."""
    found = []
    for path, text in _outside("decisions").items():
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            if not all(isinstance(op, (ast.GtE, ast.Gt, ast.Lt, ast.LtE)) for op in node.ops):
                continue
            if any(map(_mentions_threshold, sides)) and any(map(_mentions_score, sides)):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not found, f"scores compared with a threshold outside harmcache/decisions: {found}"


def test_the_bound_relation_is_written_once():
    pattern = "if m == 'flagged'"
    spelled = [
        str(p.relative_to(PACKAGE.parent))
        for p, text in SOURCES.items()
        if "'<=' if" in text or '"<=" if' in text
    ]
    assert spelled == ["harmcache/decisions/objective.py"], pattern


def _calls(path: Path, name: str) -> bool:
    tree = ast.parse(SOURCES[path])
    return any(
        isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[-1] == name
        for node in ast.walk(tree)
    )


@pytest.mark.parametrize("name", ["extract_video", "ShardBatcher", "JobResults"])
def test_both_engines_share_the_per_video_path_and_its_bookkeeping(name):
    """The local engine (extract/pipeline.py) and the Ray engine (its driver and its actor)
    run one per-video function and one shard batcher, and track failures one way."""
    engines = {
        "extract_video": ["pipeline.py", "ray_worker.py"],
        "ShardBatcher": ["pipeline.py", "ray_worker.py"],
        "JobResults": ["pipeline.py", "ray_engine.py"],
    }[name]
    for module in engines:
        path = PACKAGE / "extract" / module
        assert _calls(path, name) or f"{name}." in SOURCES[path], f"{module} does not use {name}"


MAX_MODULE_LINES = 400


def test_no_module_outgrows_one_concept():
    """A module past ~400 lines has been holding two concepts; split it before it drifts."""
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p, text in SOURCES.items()
        if (n := text.count("\n")) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


DOCUMENTED = sorted(
    p
    for p in [*PACKAGE.parent.glob("*.md"), *(PACKAGE.parent / "docs").glob("*.md")]
    + [
        *SOURCES,
        *(PACKAGE.parent / "tests").rglob("*.py"),
        *(PACKAGE.parent / "bench").glob("*.py"),
    ]
)


def test_the_code_cites_only_documents_in_the_repository():
    """Lessons are cited as docs/design-notes.md#<section>, and every such section exists."""
    import re

    notes = (PACKAGE.parent / "docs" / "design-notes.md").read_text(encoding="utf-8")
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", line[3:].strip().lower()).replace(" ", "-")
        for line in notes.splitlines()
        if line.startswith("## ")
    }
    missing, foreign = [], []
    for path in DOCUMENTED:
        text = path.read_text(encoding="utf-8")
        where = str(path.relative_to(PACKAGE.parent))
        missing += [f"{where}#{a}" for a in re.findall(r"design-notes\.md#([a-z0-9-]+)", text)
                    if a not in anchors]  # fmt: skip
        if path.name != "test_layers.py":
            foreign += [where for _ in re.findall(r"\breports? 0\d\d\b|§\s?\d", text)]
    assert not missing, f"links to sections docs/design-notes.md does not have: {missing}"
    assert not foreign, f"citations of documents outside the repository: {sorted(set(foreign))}"
