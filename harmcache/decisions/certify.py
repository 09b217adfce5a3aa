"""Decision thresholds with a finite-sample guarantee: Learn Then Test (Angelopoulos, Bates,
Candès, Jordan and Lei, "Learn Then Test: Calibrating Predictive Algorithms to Achieve Risk
Control", 2021, arXiv:2110.01052).

A video is flagged when score >= threshold (`harmcache.decisions.rule`). Each target is a
risk that must stay under a level:

    recall>=R       miss rate among positives <= 1 - R          n = labelled positives
    precision>=P    false-discovery rate among flagged <= 1 - P  n = videos flagged at t
    flagged<=F      share of all videos flagged <= F            n = all videos

For every candidate threshold t the null "risk(t) > level" is tested with the exact binomial
tail p(t) = P(Binomial(n, level) <= observed errors). For recall and precision n is itself
random (labelled positives, videos flagged at t); given n, those videos are an i.i.d. sample of
the positives (or of the videos scoring >= t), so the test is exact conditionally on n and
therefore valid unconditionally, which is how Learn Then Test treats such conditional risks.

Multiple testing over thresholds:

- recall>=R: fixed-sequence testing from the lowest threshold up (the miss rate only grows with
  t), stopping at the first failure. The miss count changes only at positive scores, so testing
  every distinct calibration score is the same as testing the continuum and stays valid.
  Chosen: the highest certified threshold (fewest flags).
- flagged<=F with recall: a second fixed sequence from the highest threshold down. The two
  sequences run in opposite directions, so delta is split between them (Bonferroni, delta/2
  each). Chosen: the highest threshold certified by both.
- precision>=P: the false-discovery rate need not be monotone in t, and the highest
  thresholds flag too few videos to pass any test, so a fixed sequence from the top stops at
  once. Wiens' fallback procedure (a graphical FWER procedure, Bretz et al. 2009) keeps the
  order but not the all-or-nothing: over a grid fixed before the data is seen (default 0.01 ...
  0.99, as the threshold sweep) from the highest threshold down, each test gets delta/m plus
  the level of the test just above it when that one passed. A run of passed thresholds thus
  carries its level down to the boundary, where Bonferroni-Holm would test at about
  delta/(m - passed so far). With flagged<=F each threshold's p-value is the larger of the two.
  Chosen: the lowest certified threshold (most recall).

With probability at least 1 - delta over the draw of the calibration set, every threshold
certified this way meets its targets on the population the set was drawn from.

Why not MAPIE's controller: docs/guarantees.md ("Why not MAPIE").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.stats import beta as beta_distribution
from scipy.stats import binom

from harmcache.decisions.inputs import candidates, labelled_scores
from harmcache.decisions.objective import Objective, Target
from harmcache.decisions.rule import below
from harmcache.errors import DataError

MAX_NEEDED_POSITIVES = 1_000_000
"""Beyond this many labelled positives the answer is reported as 'no realistic amount'."""

_EPS = 1e-9  # rate * n = 9.000000000000002 must count 9 errors, not 10


@dataclass
class Certificate:
    """The outcome of `certify`. With probability >= `confidence` over the draw of the
    calibration set, a certified threshold meets every target on the population."""

    method: str
    confidence: float
    delta: float
    """1 - confidence: the allowed chance that the certificate is wrong."""
    objective: str
    threshold: float | None
    """Flag a video when its score >= threshold. None when nothing could be certified."""
    bound: float | None
    """Lower confidence bound of the certified metric (recall or precision) at `threshold`:
    exact binomial (Clopper-Pearson), one-sided, at the level the test used (see `levels`).
    Certified means bound >= the target. None when nothing was certified."""
    n_positive: int
    n_negative: int
    certified: bool
    needed_positives: int | None
    """When not certified: labelled positives that would certify the objective if the scores
    kept the rates seen here (counts scaled, rounded against the claim). None when certified,
    or when no amount of such data would do (see `reason`)."""
    bounds: dict[str, float] = field(default_factory=dict)
    """Every target's bound at `threshold`: lower bounds for recall and precision, the upper
    bound for flagged."""
    levels: dict[str, float] = field(default_factory=dict)
    """The significance level each target's test was passed at: delta, delta/2 with a flag
    budget, or the fallback procedure's level for precision."""
    empirical: dict[str, float] = field(default_factory=dict)
    """recall, precision and flagged share at `threshold` on the calibration set itself."""
    n_thresholds: int = 0
    """Candidate thresholds tested."""
    reason: str = ""
    """Why nothing was certified, in words; empty when certified."""

    def to_json(self) -> dict:
        return _plain(asdict(self))


def certify(
    y_true,
    scores,
    objective: str | Objective,
    *,
    confidence: float = 0.9,
    grid=None,
) -> Certificate:
    """Certify a threshold for `objective` on calibration labels and scores (Learn Then Test).

    `grid`: candidate thresholds. Default: every distinct score for recall>=R (valid because
    the miss rate is monotone), DEFAULT_PRECISION_GRID for precision>=P. A grid must be chosen
    without looking at the calibration labels.
    """
    obj = objective if isinstance(objective, Objective) else Objective.parse(objective)
    obj = obj.certifiable()
    y, s = labelled_scores(y_true, scores)
    if not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise DataError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    delta = round(1.0 - float(confidence), 12)  # 1 - 0.9 is 0.09999999999999998
    thresholds = candidates(obj, s, grid)
    table = _Table.observe(y, s, thresholds)
    decision = _decide(obj, table, delta)
    cert = Certificate(
        method=decision.method,
        confidence=float(confidence),
        delta=delta,
        objective=obj.text,
        threshold=None,
        bound=None,
        n_positive=table.n_pos,
        n_negative=table.n - table.n_pos,
        certified=False,
        needed_positives=None,
        n_thresholds=len(thresholds),
    )
    if decision.index is None:
        cert.needed_positives, cert.reason = _needed_positives(obj, table, delta)
        return cert
    i = decision.index
    cert.bounds = {t.metric: _bound(t, table, i, decision.levels[t.metric]) for t in obj.targets}
    cert.threshold = float(thresholds[i])
    cert.bound = cert.bounds[obj.primary.metric]
    cert.certified = True
    cert.levels = dict(decision.levels)
    cert.empirical = table.empirical(i)
    return cert


class NotCertifiedError(DataError):
    """No threshold could be certified. `certificate` holds the refusal: `needed_positives`
    and `reason`. The message is one line, for the command line."""

    def __init__(self, certificate: Certificate | str):
        if isinstance(certificate, str):  # rebuilt from a pickle: the message only
            super().__init__(certificate)
            self.certificate = None
            return
        self.certificate = certificate
        super().__init__(not_certified_message(certificate))


def not_certified_message(cert: Certificate) -> str:
    """One line: what could not be certified, on how many videos, and how many more labelled
    harmful videos would do (or that none would)."""
    head = (
        f"{cert.objective} cannot be certified at {cert.confidence:.0%} confidence on "
        f"{cert.n_positive} harmful and {cert.n_negative} safe videos"
    )
    if cert.needed_positives is None:
        return f"{head}: {cert.reason}"
    more = cert.needed_positives - cert.n_positive
    return (
        f"{head}: about {cert.needed_positives} labelled harmful videos would be needed "
        f"({more} more, with safe ones at the same prevalence), if new videos score like these"
    )


# --- counts at candidate thresholds ------------------------------------------------------------


@dataclass
class _Table:
    """Error counts at each candidate threshold (ascending). Scaled copies stand in for larger
    calibration sets with the same rates when working out the positives needed."""

    thresholds: np.ndarray
    n: int
    n_pos: int
    miss: np.ndarray
    """positives scoring below t"""
    flagged: np.ndarray
    """videos scoring >= t"""
    false_flags: np.ndarray
    """negatives scoring >= t"""

    @classmethod
    def observe(cls, y: np.ndarray, s: np.ndarray, thresholds: np.ndarray) -> _Table:
        pos, neg = np.sort(s[y == 1]), np.sort(s[y == 0])
        miss = below(pos, thresholds)
        false_flags = len(neg) - below(neg, thresholds)
        flagged = len(pos) - miss + false_flags
        return cls(thresholds, len(s), len(pos), miss, flagged, false_flags)

    def scaled(self, n_pos: int) -> _Table:
        """The same rates with `n_pos` positives (and as many videos as the prevalence implies),
        every error count rounded up so the scaled set never looks better than this one."""
        n = max(n_pos + 1, round(n_pos * self.n / self.n_pos))

        def up(x: np.ndarray) -> np.ndarray:
            return np.ceil(x - _EPS).astype(np.int64)

        flagged = np.minimum(up(self.flagged / self.n * n), n)
        fdr = np.divide(
            self.false_flags, self.flagged, out=np.ones(len(self.flagged)), where=self.flagged > 0
        )
        false_flags = np.minimum(up(fdr * flagged), flagged)
        miss = np.minimum(up(self.miss / self.n_pos * n_pos), n_pos)
        return _Table(self.thresholds, n, n_pos, miss, flagged, false_flags)

    def empirical(self, i: int) -> dict[str, float]:
        flagged = int(self.flagged[i])
        return {
            "recall": 1.0 - self.miss[i] / self.n_pos,
            "precision": (flagged - int(self.false_flags[i])) / flagged if flagged else math.nan,
            "flagged": flagged / self.n,
        }

    def errors_and_n(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """The risk's error count and its n at every threshold."""
        if metric == "recall":
            return self.miss, np.full(len(self.miss), self.n_pos)
        if metric == "precision":
            return self.false_flags, self.flagged
        return self.flagged, np.full(len(self.flagged), self.n)


# --- the test ----------------------------------------------------------------------------------


@dataclass
class _Decision:
    method: str
    index: int | None
    levels: dict[str, float]


def _p_values(target: Target, table: _Table) -> np.ndarray:
    """P(Binomial(n, level) <= errors): small when the risk is surely below its level."""
    errors, n = table.errors_and_n(target.metric)
    p = binom.cdf(errors, np.maximum(n, 1), target.risk_level)
    return np.where(n > 0, p, 1.0)


def _decide(obj: Objective, table: _Table, delta: float) -> _Decision:
    if obj.primary.metric == "recall":
        share = delta / 2 if obj.budget else delta
        ok = np.logical_and.accumulate(_p_values(obj.primary, table) <= share)  # low -> high
        levels = {"recall": share}
        method = "ltt-binomial-fixed-sequence"
        if obj.budget:
            passed = _p_values(obj.budget, table)[::-1] <= share  # high -> low
            ok &= np.logical_and.accumulate(passed)[::-1]
            levels["flagged"] = share
            method += "-split"
        hits = np.flatnonzero(ok)
        return _Decision(method, int(hits[-1]) if len(hits) else None, levels)

    p = _p_values(obj.primary, table)
    if obj.budget:
        p = np.maximum(p, _p_values(obj.budget, table))  # either risk too high is the null
    passed_at = _fallback(p, delta)
    hits = np.flatnonzero(passed_at > 0)
    if not len(hits):
        return _Decision("ltt-binomial-fallback", None, {})
    i = int(hits[0])  # the lowest certified threshold: the most recall
    levels = {t.metric: float(passed_at[i]) for t in obj.targets}
    return _Decision("ltt-binomial-fallback", i, levels)


def _fallback(p: np.ndarray, delta: float) -> np.ndarray:
    """Wiens' fallback procedure from the highest threshold down, equal weights: each test gets
    delta/m plus the level of the test just above it when that one was passed. Returns the
    level each threshold passed at, 0 where it did not."""
    m = len(p)
    passed_at = np.zeros(m)
    carry = 0.0
    for j in range(m - 1, -1, -1):
        level = delta / m + carry
        if p[j] <= level:
            passed_at[j] = level
            carry = level
        else:
            carry = 0.0
    return passed_at


def _risk_upper(errors: int, n: int, level: float) -> float:
    """One-sided exact (Clopper-Pearson) upper confidence bound on a binomial rate."""
    if errors >= n:
        return 1.0
    return float(beta_distribution.ppf(1 - level, errors + 1, n - errors))


def _bound(target: Target, table: _Table, i: int, level: float) -> float:
    errors, n = table.errors_and_n(target.metric)
    upper = _risk_upper(int(errors[i]), int(n[i]), level)
    return upper if target.metric == "flagged" else 1.0 - upper


# --- when nothing passes -----------------------------------------------------------------------


def _needed_positives(obj: Objective, table: _Table, delta: float) -> tuple[int | None, str]:
    targets = obj.targets
    feasible = np.ones(len(table.thresholds), dtype=bool)
    for t in targets:
        errors, n = table.errors_and_n(t.metric)
        rate = np.divide(errors, n, out=np.ones(len(n)), where=n > 0)
        feasible &= rate < t.risk_level
    have = f"this set has {table.n_pos} positives and {table.n - table.n_pos} negatives"
    if not feasible.any():
        return None, (
            f"no candidate threshold meets {obj.text} even on the calibration set itself "
            f"({_best_empirical(obj, table)}); more labelled data of this kind cannot certify "
            "it: the scores must separate better, or the target must be lowered"
        )

    def passes(n_pos: int) -> bool:
        return _decide(obj, table.scaled(n_pos), delta).index is not None

    low, high = table.n_pos, max(2 * table.n_pos, table.n_pos + 1)
    while not passes(high):
        low, high = high, 2 * high
        if low >= MAX_NEEDED_POSITIVES:
            return None, (
                f"the calibration set only just meets {obj.text} empirically, so certifying it "
                f"would take more than {MAX_NEEDED_POSITIVES:,} labelled positives; {have}"
            )
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if passes(middle) else (middle, high)
    negatives = table.scaled(high).n - high
    return high, (
        f"{obj.text} cannot be certified at {1 - delta:.0%} confidence: {have}. With the score "
        f"distribution seen here it would take about {high} labelled positives (and about "
        f"{negatives} negatives with them, at this prevalence)"
    )


def _best_empirical(obj: Objective, table: _Table) -> str:
    rows = [table.empirical(i) for i in range(len(table.thresholds))]
    metric = obj.primary.metric
    if obj.budget is None:
        best = max(r[metric] for r in rows)
        return f"the best empirical {metric} at any threshold is {best:.3f}"
    within = [r[metric] for r in rows if r["flagged"] < obj.budget.level]
    if not within:
        return f"every threshold flags at least {obj.budget.level:g} of the videos"
    return (
        f"the best empirical {metric} while flagging under {obj.budget.level:g} of the videos "
        f"is {max(within):.3f}"
    )


def _plain(x):
    """numpy scalars to Python ones, so json.dumps takes the result."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and math.isnan(x):
        return None
    return x
