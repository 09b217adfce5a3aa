"""How harmcache/store is cut: `FeatureCache` opens, writes and plans reads; keeping a cache in
order is maintenance.py's; the first shard layout is read in legacy_v1.py alone; every module
stays small."""

from __future__ import annotations

import ast

import pytest

from harmcache.store import maintenance
from harmcache.store.cache import FeatureCache
from tests import REPO

STORE = REPO / "harmcache" / "store"
LOADER = STORE.parent / "train" / "loader.py"


@pytest.mark.parametrize(
    "name", ["verify", "stale", "collect_garbage", "remove", "migrate", "compact", "reindex"]
)
def test_maintenance_is_a_module_of_its_own(name):
    assert callable(getattr(maintenance, name))
    assert not hasattr(FeatureCache, name)
    assert not hasattr(FeatureCache, "rebuild_index") and not hasattr(FeatureCache, "leftovers")


def test_only_the_layout_dispatch_knows_the_first_layout():
    users = []
    for path in sorted(STORE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "harmcache.store":
                users += [path.name for alias in node.names if alias.name == "legacy_v1"]
            elif isinstance(node, ast.ImportFrom) and node.module == "harmcache.store.legacy_v1":
                users.append(path.name)
    assert sorted(users) == ["reader.py", "shard_check.py"]


@pytest.mark.parametrize("path", [*sorted(STORE.glob("*.py")), LOADER], ids=lambda p: p.name)
def test_modules_stay_small(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 400
