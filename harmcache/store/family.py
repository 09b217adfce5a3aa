"""A shard family: every shard of one extractor at one fingerprint.

A family is written in two places, each read back here and nowhere else: its folder's
`family.json` and the root attributes of every shard it holds (see docs/cache-format.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harmcache.errors import CacheError
from harmcache.hashing import canonical_json
from harmcache.hashing import fingerprint as spec_fingerprint

JSON_KEYS = ("extractor", "fingerprint", "spec")
"""What family.json holds."""


@dataclass(frozen=True)
class Family:
    extractor: str
    fingerprint: str
    spec: dict[str, Any]

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Family:
        return cls(spec["extractor"], spec_fingerprint(spec), spec)

    @property
    def name(self) -> str:
        """Folder name: readable extractor plus enough of the fingerprint to be unique."""
        return f"{self.extractor}-{self.fingerprint[:12]}"

    @property
    def random_init(self) -> bool:
        return self.spec.get("weights", {}).get("kind") == "random-init"

    @property
    def version(self) -> str:
        return str(self.spec.get("version", ""))

    # --- family.json -----------------------------------------------------------------------
    def to_json(self) -> str:
        """The text of the family's family.json."""
        fields = {"extractor": self.extractor, "fingerprint": self.fingerprint, "spec": self.spec}
        return json.dumps(fields, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Family:
        """The family a family.json holds; a `ValueError` when it is not one."""
        data = json.loads(text)
        if not all(key in data for key in JSON_KEYS):
            raise ValueError("extractor, fingerprint or spec is missing")
        return cls(data["extractor"], data["fingerprint"], data["spec"])

    @classmethod
    def read(cls, path: Path) -> Family:
        """A family folder's family.json, or a `CacheError` naming it."""
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CacheError(
                f"{path.parent.name}/family.json is damaged ({exc}); "
                "`harmcache cache reindex` rebuilds the index but not this file"
            ) from None

    # --- a shard's root attributes ---------------------------------------------------------
    def write_attrs(self, attrs) -> None:
        """Write the family into a shard's root attributes (an h5py `AttributeManager`)."""
        attrs["family"] = self.name
        attrs["extractor"] = self.extractor
        attrs["fingerprint"] = self.fingerprint
        attrs["spec"] = canonical_json(self.spec)
        attrs["random_init"] = self.random_init

    @classmethod
    def from_attrs(cls, attrs) -> Family:
        """The family written by `write_attrs`."""
        return cls(str(attrs["extractor"]), str(attrs["fingerprint"]), json.loads(attrs["spec"]))
