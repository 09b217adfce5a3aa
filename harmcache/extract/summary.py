"""What an extraction run reports for every input."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(slots=True)
class InputResult:
    path: str
    video_id: str | None
    status: str
    """extracted | cached | failed"""
    reason: str | None = None
    message: str | None = None


@dataclass
class ExtractSummary:
    inputs: list[InputResult] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for r in self.inputs if r.status == status)

    @property
    def failed(self) -> list[InputResult]:
        return [r for r in self.inputs if r.status == "failed"]

    def to_json(self) -> dict:
        return {
            "extracted": self.count("extracted"),
            "cached": self.count("cached"),
            "failed": self.count("failed"),
            "inputs": [asdict(r) for r in self.inputs],
        }
