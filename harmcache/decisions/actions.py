"""What a policy does to each video: remove, review or allow.

Per category, with its two thresholds (t_review <= t_remove; either may be off):

    score >= t_remove               remove
    t_review <= score < t_remove    review (a human looks at it)
    otherwise                       allow

A video's action is the most severe over its categories (remove > review > allow), decided by
the category with the highest score among those at that severity. Scores are compared with
thresholds through `harmcache.decisions.rule.flags`, the one decision rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harmcache.decisions.rule import flags
from harmcache.errors import DataError

ACTIONS = ("allow", "review", "remove")
"""Indexed by severity: 0 allow, 1 review, 2 remove."""
ALLOW, REVIEW, REMOVE = range(3)

Bands = dict[str, tuple[float | None, float | None]]
"""category -> (t_review, t_remove); None where the band is off (not in the policy, or refused)."""


@dataclass
class Actions:
    """The policy's decision on n videos."""

    categories: list[str]
    per_category: dict[str, np.ndarray]
    """category -> (n,) str array of 'remove' | 'review' | 'allow'."""
    action: np.ndarray
    """(n,) str: each video's overall action, the most severe over categories."""
    decided_by: np.ndarray
    """(n,) str: the category that decided it (highest score among those at that severity)."""

    def shares(self) -> dict[str, float]:
        """The share of videos given each action."""
        n = max(len(self.action), 1)
        return {a: float(np.sum(self.action == a)) / n for a in ACTIONS}


def severities(bands: Bands, scores: dict[str, np.ndarray]) -> np.ndarray:
    """(n, K) int8 severity per video and category, in the order of `bands`."""
    return np.stack([_severity(scores[c], *pair) for c, pair in bands.items()], axis=1)


def overall(bands: Bands, scores: dict[str, np.ndarray]) -> np.ndarray:
    """(n,) int8: each video's severity, the most severe over its categories. A video goes to
    review when some category reviews it and none removes it."""
    out = None
    for c, pair in bands.items():
        severity = _severity(scores[c], *pair)
        out = severity if out is None else np.maximum(out, severity)
    return out


def _severity(scores, t_review: float | None, t_remove: float | None) -> np.ndarray:
    # A review band that is off, or set above t_remove, starts at t_remove: then the two flags
    # count 0 (allow), 1 (review) or 2 (remove).
    s = np.asarray(scores, dtype=np.float64)
    t_remove = _on(t_remove)
    t_review = min(_on(t_review), t_remove)
    return flags(s, t_review).astype(np.int8) + flags(s, t_remove)


def review_share(bands: Bands, scores: dict[str, np.ndarray]) -> float:
    """The share of videos sent to review."""
    return float(np.mean(overall(bands, scores) == REVIEW))


def decide(policy_cert, probabilities: dict[str, np.ndarray]) -> Actions:
    """Each video's action under a certified policy (a `PolicyCertificate` or its `to_json()`,
    as policy.json holds it), from its score per category. Categories outside the policy are
    ignored; a refused band never fires."""
    return decide_bands(bands_of(policy_cert), probabilities)


def decide_bands(bands: Bands, probabilities: dict[str, np.ndarray]) -> Actions:
    """Each video's action under `bands` (category → (t_review, t_remove)), from its score per
    category."""
    missing = [c for c in bands if c not in probabilities]
    if missing:
        raise DataError(
            f"no scores for {', '.join(missing)}; the policy decides on {', '.join(bands)}"
        )
    scores = {c: np.atleast_1d(np.asarray(probabilities[c], dtype=np.float64)) for c in bands}
    lengths = {len(s) for s in scores.values()}
    if len(lengths) != 1:
        raise DataError(f"the categories hold different numbers of scores: {sorted(lengths)}")
    categories = list(bands)
    severity = severities(bands, scores)
    overall = severity.max(axis=1)
    stacked = np.stack([scores[c] for c in categories], axis=1)
    at_level = np.where(severity == overall[:, None], stacked, -np.inf)
    names = np.array(ACTIONS, dtype=object)
    return Actions(
        categories=categories,
        per_category={c: names[severity[:, k]] for k, c in enumerate(categories)},
        action=names[overall],
        decided_by=np.array(categories, dtype=object)[at_level.argmax(axis=1)],
    )


def bands_of(policy_cert) -> Bands:
    """category -> (t_review, t_remove) from a `PolicyCertificate` or its JSON."""
    record = policy_cert.to_json() if hasattr(policy_cert, "to_json") else policy_cert
    try:
        categories = record["categories"]
        return {
            c: (_threshold(b.get("review")), _threshold(b.get("remove")))
            for c, b in categories.items()
        }
    except (KeyError, TypeError, AttributeError):
        raise DataError(
            "not a policy certificate: expected {'categories': {C: {'remove': {...}, "
            "'review': {...}}}} as policy.json holds it"
        ) from None


def _threshold(band: dict | None) -> float | None:
    if band is None or not band.get("certified") or band.get("threshold") is None:
        return None
    return float(band["threshold"])


def _on(threshold: float | None) -> float:
    return math.inf if threshold is None else threshold
