"""A moderation policy over several categories, and its joint certificate.

    confidence: 0.9          # every promise below holds jointly with this probability
    review_budget: 0.10      # at most this share of videos goes to human review (optional)
    categories:
      violence: {remove: "precision>=0.95", review: "recall>=0.9"}
      weapons:  {review: "recall>=0.8"}

Per category: remove at score >= t_remove (precision certified), review below it down to
t_review (recall of score >= t_review certified), allow the rest (`actions.py`). delta is split
evenly over the m promises (Bonferroni); each band is `certify()` at 1 - delta/m and is refused
alone if it cannot pass; the review-share bound holds over every threshold setting on the 0.01
grid at once. The procedure and why it is valid: docs/guarantees.md, "Policies over many
categories".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import beta as beta_distribution

from harmcache.decisions.actions import REMOVE, REVIEW, Bands, overall
from harmcache.decisions.category_scores import CategoryScores
from harmcache.decisions.certify import Certificate, certify, not_certified_message
from harmcache.decisions.objective import Objective
from harmcache.errors import DataError, UsageError
from harmcache.user_files import read_user_yaml

BANDS = {"remove": "precision", "review": "recall"}
"""Each band and the metric it certifies."""
KEYS = ("confidence", "review_budget", "categories")
METHOD = "ltt-bonferroni"
"""Each promise certified at delta/m; the review share bounded over the 0.01 grid."""
GRID_STEPS = 100
"""The review-share bound rounds thresholds outward to multiples of 1/GRID_STEPS."""
GRID_VALUES = GRID_STEPS + 2
"""Values one rounded threshold can take: 0, 0.01, ..., 1, or off."""
_EPS = 1e-9


@dataclass(frozen=True)
class CategoryRule:
    """A category's bands: `remove` (precision>=P), `review` (recall>=R), either or both."""

    remove: Objective | None = None
    review: Objective | None = None

    def bands(self) -> dict[str, Objective]:
        return {b: o for b, o in (("remove", self.remove), ("review", self.review)) if o}


@dataclass(frozen=True)
class Policy:
    """What a team promises over its categories, at one joint confidence."""

    confidence: float
    categories: dict[str, CategoryRule]
    review_budget: float | None = None
    """At most this share of all videos goes to human review; None for no budget."""

    @classmethod
    def read(cls, path: str | Path) -> Policy:
        """A policy from a YAML file; a UsageError names the key at fault."""
        path = Path(path)
        return cls.from_dict(read_user_yaml(path, "policy"), source=path.name)

    @classmethod
    def from_dict(cls, record, source: str = "policy") -> Policy:
        """A policy from a mapping shaped like the YAML file."""
        if not isinstance(record, dict):
            raise UsageError(f"{source}: a policy is a mapping with keys {', '.join(KEYS)}")
        unknown = [str(k) for k in record if k not in KEYS]
        if unknown:
            raise UsageError(f"{source}: unknown key {unknown[0]!r}; allowed: {', '.join(KEYS)}")
        if "confidence" not in record:
            raise UsageError(f"{source}: confidence is missing; give e.g. confidence: 0.9")
        confidence = _share(source, "confidence", record["confidence"])
        budget = record.get("review_budget")
        budget = None if budget is None else _share(source, "review_budget", budget)
        categories = record.get("categories")
        if not isinstance(categories, dict) or not categories:
            raise UsageError(
                f"{source}: categories must map each category to its bands, e.g. "
                'violence: {remove: "precision>=0.95", review: "recall>=0.9"}'
            )
        rules = {_name(source, c): _rule(source, c, bands) for c, bands in categories.items()}
        return cls(confidence, rules, budget)

    @classmethod
    def load(cls, policy: Policy | dict | str | Path) -> Policy:
        """A Policy as given, from a mapping, or from a YAML file."""
        if isinstance(policy, Policy):
            return policy
        return cls.from_dict(policy) if isinstance(policy, dict) else cls.read(policy)

    @property
    def promises(self) -> int:
        """m: every band, and the review budget if set."""
        bands = sum(len(rule.bands()) for rule in self.categories.values())
        return bands + (self.review_budget is not None)

    @property
    def delta(self) -> float:
        return round(1.0 - self.confidence, 12)


def _share(source: str, key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise UsageError(
            f"{source}: {key} must be a number strictly between 0 and 1, got {value!r}"
        )
    return float(value)


def _name(source: str, name) -> str:
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise UsageError(
            f"{source}: category {name!r}: a category is named by text, as in its scores' "
            "column NAME_score"
        )
    return name


def _rule(source: str, category: str, bands) -> CategoryRule:
    where = f"{source}: categories.{category}"
    if not isinstance(bands, dict) or not bands:
        raise UsageError(
            f"{where} has no band; give remove: precision>=P, review: recall>=R, or both"
        )
    unknown = [str(b) for b in bands if b not in BANDS]
    if unknown:
        raise UsageError(
            f"{where}: unknown band {unknown[0]!r}; allowed: remove (precision>=P), "
            "review (recall>=R)"
        )
    parsed = {}
    for band, text in bands.items():
        metric = BANDS[band]
        try:
            obj = Objective.parse(text).certifiable() if isinstance(text, str) else None
        except UsageError:
            obj = None
        if obj is None or obj.kind != metric or obj.budget is not None:
            raise UsageError(
                f"{where}.{band} must be {metric}>=X with X strictly between 0 and 1, got {text!r}"
            )
        parsed[band] = obj
    return CategoryRule(**parsed)


# --- the certificate ---------------------------------------------------------------------------


@dataclass
class BandCertificate:
    """One band's promise: `certify()` at the policy's share of confidence, or its refusal."""

    objective: Objective
    confidence: float
    """1 - delta/m."""
    threshold: float | None = None
    certificate: Certificate | None = None
    """None when the labels could not be certified at all (one class, no labelled rows)."""
    clamped_from: float | None = None
    """The certified review threshold, when it sat above t_remove and was lowered to it."""
    reason: str = ""
    n_positive: int = 0
    n_negative: int = 0

    @property
    def certified(self) -> bool:
        return self.threshold is not None

    @property
    def needed_positives(self) -> int | None:
        return None if self.certificate is None else self.certificate.needed_positives

    def refusal(self) -> str:
        """Why the band was refused, in one line."""
        if self.certificate is None:
            return self.reason
        return not_certified_message(self.certificate)

    def to_json(self) -> dict:
        cert = self.certificate
        return {
            "objective": self.objective.text,
            "level": self.objective.primary.level,
            "threshold": self.threshold,
            "certified": self.certified,
            "bound": cert.bound if cert else None,
            "needed_positives": self.needed_positives,
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
            "confidence": self.confidence,
            "method": cert.method if cert else None,
            "empirical": cert.to_json()["empirical"] if cert and cert.certified else {},
            "clamped_from": self.clamped_from,
            "reason": "" if self.certified else self.refusal(),
        }


@dataclass
class PolicyCertificate:
    """`certify_policy`'s outcome. With probability >= `policy.confidence` over the draw of the
    calibration rows, every certified band and a certified review budget hold at once."""

    policy: Policy
    bands: dict[str, dict[str, BandCertificate]]
    """category -> band ('remove', 'review') -> its certificate."""
    n: int
    """Rows scored, labelled or not: what the review share is measured over."""
    review_share: float
    remove_share: float
    review_share_bound: float | None = None
    """Upper confidence bound of the review share; None without a review budget."""
    budget_candidates: int | None = None
    """N, the threshold candidates the review-share bound holds over."""
    method: str = METHOD

    @property
    def budget_certified(self) -> bool | None:
        if self.policy.review_budget is None:
            return None
        return self.review_share_bound <= self.policy.review_budget + _EPS

    @property
    def any_certified(self) -> bool:
        return any(b.certified for bands in self.bands.values() for b in bands.values())

    def thresholds(self) -> Bands:
        """category -> (t_review, t_remove), None where a band is off or refused."""
        return {
            c: tuple(b[k].threshold if k in b else None for k in ("review", "remove"))
            for c, b in self.bands.items()
        }

    def to_json(self) -> dict:
        return {
            "categories": {
                c: {b: cert.to_json() for b, cert in bands.items()}
                for c, bands in self.bands.items()
            },
            "review_share": self.review_share,
            "review_share_bound": self.review_share_bound,
            "review_budget": self.policy.review_budget,
            "budget_certified": self.budget_certified,
            "confidence": self.policy.confidence,
            "promises": self.policy.promises,
            "method": self.method,
        }

    def lines(self) -> list[str]:
        """What `harmcache sweep-threshold --policy` prints: one line per category and band,
        then the review budget."""
        m = self.policy.promises
        lines = [
            f"policy: {len(self.bands)} categories, {m} promises held jointly at "
            f"{self.policy.confidence:.0%} confidence (each at {1 - self.policy.delta / m:.2%}, "
            f"Bonferroni); "
            f"{self.n} videos, {self.remove_share:.1%} removed, {self.review_share:.1%} to review"
        ]
        width = max(len(c) for c in self.bands)
        for category, bands in self.bands.items():
            for band, cert in bands.items():
                lines.append(f"  {category:<{width}} {band:<6} {_band_line(cert)}")
        lines.append("  " + self._budget_line())
        return lines

    def _budget_line(self) -> str:
        here = f"{self.review_share:.3f} on these videos"
        budget = self.policy.review_budget
        if budget is None:
            return f"review share: {here} (no review budget set, nothing promised)"
        bound = self.review_share_bound
        if self.budget_certified:
            return (
                f"review budget {budget:g}: certified, at most {bound:.4f} of videos go to "
                f"review ({here})"
            )
        return (
            f"review budget {budget:g}: NOT certified: the review share's bound {bound:.4f} "
            f"exceeds it by {bound - budget:.4f} ({here}); the thresholds are left as "
            "certified: lower the bands' targets, raise the budget, or score more videos"
        )


def _band_line(cert: BandCertificate) -> str:
    if not cert.certified:
        return f"refused: {cert.refusal()}"
    c = cert.certificate
    metric = cert.objective.kind
    clamped = (
        f"; certified at {cert.clamped_from:.4g}, lowered to t_remove"
        if cert.clamped_from is not None
        else ""
    )
    return (
        f">= {cert.threshold:.4g}: {metric} >= {c.bound:.4f} certified (target "
        f"{cert.objective.primary.level:g}; {c.n_positive} harmful and {c.n_negative} safe "
        f"labelled; {c.empirical[metric]:.4f} on these){clamped}"
    )


# --- certifying --------------------------------------------------------------------------------


def certify_policy(policy: Policy | dict | str | Path, scores: CategoryScores) -> PolicyCertificate:
    """Certify every band of `policy` on `scores` at its share of the joint confidence, and
    bound the review share when the policy sets a budget (see the module docstring)."""
    policy = Policy.load(policy)
    share = policy.delta / policy.promises
    for category in policy.categories:
        scores.index(category)  # a category without scores is the file's fault, not a refusal
    bands: dict[str, dict[str, BandCertificate]] = {}
    for category, rule in policy.categories.items():
        y, s = scores.labelled(category)
        bands[category] = {
            band: _certify_band(obj, y, s, 1.0 - share) for band, obj in rule.bands().items()
        }
        review, remove = bands[category].get("review"), bands[category].get("remove")
        if review and remove and review.certified and remove.certified:
            if review.threshold > remove.threshold:
                review.clamped_from, review.threshold = review.threshold, remove.threshold
    columns = {c: scores.column(c) for c in policy.categories}
    result = PolicyCertificate(policy, bands, len(scores), 0.0, 0.0)
    chosen = overall(result.thresholds(), columns)
    result.review_share = float(np.mean(chosen == REVIEW))
    result.remove_share = float(np.mean(chosen == REMOVE))
    if policy.review_budget is not None:
        result.budget_candidates = budget_candidates(policy)
        x = int(np.sum(overall(_outward(result.thresholds()), columns) == REVIEW))
        result.review_share_bound = upper_bound(x, len(scores), share / result.budget_candidates)
    return result


def _certify_band(obj: Objective, y: np.ndarray, s: np.ndarray, confidence: float):
    n_pos = int(y.sum())
    out = BandCertificate(obj, confidence, n_positive=n_pos, n_negative=len(y) - n_pos)
    try:
        cert = certify(y, s, obj, confidence=confidence)
    except DataError as exc:  # no labelled rows, or one class only
        out.reason = f"{obj.text} cannot be certified: {exc.message}"
        return out
    out.certificate = cert
    out.threshold = cert.threshold
    return out


def budget_candidates(policy: Policy) -> int:
    """N: the threshold settings the review-share bound holds over. A category's rounded
    threshold takes GRID_VALUES values; with both bands, any pair t_review <= t_remove."""
    n = 1
    for rule in policy.categories.values():
        both = len(rule.bands()) == 2
        n *= GRID_VALUES * (GRID_VALUES + 1) // 2 if both else GRID_VALUES
    return n


def _outward(bands: Bands) -> Bands:
    """Every threshold rounded to the 0.01 grid so that the review region can only grow:
    t_review down, t_remove up; off stays off."""

    def down(t):
        return None if t is None else math.floor(t * GRID_STEPS + _EPS) / GRID_STEPS

    def up(t):
        return None if t is None else math.ceil(t * GRID_STEPS - _EPS) / GRID_STEPS

    return {c: (down(review), up(remove)) for c, (review, remove) in bands.items()}


def upper_bound(errors: int, n: int, level: float) -> float:
    """One-sided exact (Clopper-Pearson) upper bound on a binomial rate at `level`; `isf`, as
    the level here can be far below what 1 - level resolves in floating point."""
    if errors >= n:
        return 1.0
    return float(beta_distribution.isf(level, errors + 1, n - errors))
