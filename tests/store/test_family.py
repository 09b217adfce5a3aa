"""`Family` writes and reads itself: its folder's family.json and a shard's root attributes,
exactly as they have always been written."""

from __future__ import annotations

import json

import h5py
import pytest

from harmcache.errors import CacheError
from harmcache.hashing import canonical_json
from harmcache.store.family import Family

SPEC = {"extractor": "clip", "version": "1", "weights": {"kind": "random-init", "seed": 0},
        "options": {"frames": 8, "tta": None}}  # fmt: skip


def test_family_json_round_trips_in_its_one_layout(tmp_path):
    family = Family.from_spec(SPEC)
    text = family.to_json()
    fields = {"extractor": "clip", "fingerprint": family.fingerprint, "spec": SPEC}
    assert text == json.dumps(fields, indent=2, sort_keys=True)
    (tmp_path / "family.json").write_text(text, encoding="utf-8")
    assert Family.read(tmp_path / "family.json") == family == Family.from_json(text)


@pytest.mark.parametrize(
    "text, reason",
    [('{"extractor": "clip"}', "extractor, fingerprint or spec is missing"),
     ("{not json", "Expecting property name")],
)  # fmt: skip
def test_a_damaged_family_json_is_a_cache_error_naming_it(tmp_path, text, reason):
    folder = tmp_path / "clip-0123456789ab"
    folder.mkdir()
    (folder / "family.json").write_text(text, encoding="utf-8")
    with pytest.raises(CacheError, match=f"^clip-0123456789ab/family.json is damaged \\({reason}"):
        Family.read(folder / "family.json")
    with pytest.raises(ValueError, match=reason):
        Family.from_json(text)


def test_shard_attributes_round_trip(tmp_path):
    family = Family.from_spec(SPEC)
    with h5py.File(tmp_path / "s.h5", "w") as f:
        family.write_attrs(f.attrs)
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert set(f.attrs) == {"family", "extractor", "fingerprint", "spec", "random_init"}
        assert f.attrs["family"] == family.name and bool(f.attrs["random_init"]) is True
        assert f.attrs["spec"] == canonical_json(SPEC)
        assert Family.from_attrs(f.attrs) == family
