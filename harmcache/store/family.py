"""A shard family: every shard of one extractor at one fingerprint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harmcache.hashing import fingerprint as spec_fingerprint


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
