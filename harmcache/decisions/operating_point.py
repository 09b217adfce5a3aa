"""The operating point: the threshold a run decides at, what it was chosen for, and its
certificate if it has one. It is what threshold.json holds, and `apply` is the one place where
scores become labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harmcache.decisions.objective import Objective, bound_text, relation
from harmcache.decisions.rule import flags

DEFAULT_THRESHOLD = 0.5
"""Where a head decides before any threshold was chosen for it (scikit-learn's default)."""

LABELS = ("safe", "harmful")


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float = DEFAULT_THRESHOLD
    objective: str | None = None
    certificate: dict | None = None
    """`Certificate.to_json()` when the threshold was certified (or refused)."""

    @classmethod
    def from_json(cls, record: dict) -> OperatingPoint:
        """From a threshold.json."""
        return cls(float(record["threshold"]), record.get("objective"), record.get("certificate"))

    @staticmethod
    def record(result, source: str, plot: str | None = None) -> dict:
        """threshold.json for a `SweepResult`: the choice, where its scores came from, and its
        plot if drawn."""
        return {**result.to_json(), "source": source, "plot": plot}

    def apply(self, scores) -> np.ndarray:
        """(n,) int64: 1 where a score is flagged (score >= threshold), else 0."""
        return flags(scores, self.threshold).astype(np.int64)

    def label(self, score: float) -> str:
        """'harmful' or 'safe' for one score."""
        return LABELS[int(self.apply([score])[0])]

    @property
    def certified(self) -> bool:
        return bool(self.certificate and self.certificate.get("certified"))

    @property
    def guarantee(self) -> dict | None:
        """The certificate's headline, or None when the threshold carries none."""
        if not self.certified:
            return None
        keys = ("objective", "confidence", "bound", "bounds", "method", "n_positive", "n_negative")
        return {k: self.certificate.get(k) for k in keys}

    def check(self, y: np.ndarray, scores: np.ndarray, subset: str) -> dict | None:
        """Each certified target against its value on these videos at the threshold. None when
        the threshold carries no certificate."""
        if not self.certified:
            return None
        flagged = flags(scores, self.threshold)
        harmful = np.asarray(y).astype(bool)
        observed = {
            "recall": (int((flagged & harmful).sum()), int(harmful.sum())),
            "precision": (int((flagged & harmful).sum()), int(flagged.sum())),
            "flagged": (int(flagged.sum()), int(len(harmful))),
        }
        checks = []
        for target in Objective.parse(self.certificate["objective"]).targets:
            hits, n = observed[target.metric]
            value = hits / n if n else None
            held = None if value is None else bool(target.holds(value))
            checks.append(
                {
                    "metric": target.metric,
                    "target": target.level,
                    "observed": value,
                    "n": n,
                    "held": held,
                }
            )
        measured = [c["held"] for c in checks if c["held"] is not None]
        return {
            "objective": self.certificate["objective"],
            "confidence": self.certificate["confidence"],
            "bound": self.certificate["bound"],
            "subset": subset,
            "checks": checks,
            "held": all(measured) if measured else None,
        }


def bounds_line(bounds: dict[str, float], digits: int = 4, sep: str = "; ") -> str:
    """'recall >= 0.9123; flagged <= 0.0200' from a certificate's bounds."""
    return sep.join(bound_text(m, b, digits) for m, b in bounds.items())


def describe_check(check: dict) -> str:
    """One line: did the certified targets hold on these videos."""
    parts = []
    for c in check["checks"]:
        if c["observed"] is None:
            parts.append(f"{c['metric']} not measurable (no videos to count)")
            continue
        mark = "held" if c["held"] else "missed"
        op = relation(c["metric"])
        parts.append(f"{c['metric']} {c['observed']:.4f} {op} {c['target']:g}: {mark} (n={c['n']})")
    verdict = {True: "held", False: "did not hold", None: "could not be checked"}[check["held"]]
    return (
        f"guarantee {check['objective']} at {check['confidence']:.0%} confidence {verdict} on "
        f"{check['subset']}: " + "; ".join(parts)
    )
