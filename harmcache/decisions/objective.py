"""What a threshold is chosen for, parsed once for the sweep and for the certificate:

    f1, f<beta>          maximise F-beta (f2 favours recall, f0.5 precision)
    recall>=R            maximise precision among thresholds with recall >= R
    precision>=P         maximise recall among thresholds with precision >= P
    ...,flagged<=F       and flag at most a share F of all videos (with recall or precision)

A certificate (`certify.py`) takes the recall and precision forms only, with levels strictly
between 0 and 1."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from harmcache.decisions.rule import Counts
from harmcache.errors import UsageError

_FBETA = re.compile(r"f(\d+(?:\.\d+)?|\.\d+)")
_PART = re.compile(r"(recall|precision|flagged)(>=|<=|=>|=<|>|<|=)?(\d*\.?\d+)?")
_EPS = 1e-12  # recall 9/10 must count as >= 0.9
USE = "use f1, f<beta> (f2, f0.5), recall>=R or precision>=P, optionally with ',flagged<=F'"


def relation(metric: str) -> str:
    """How a target on `metric` reads: a flag budget is an upper bound, the rest lower bounds."""
    return "<=" if metric == "flagged" else ">="


def bound_text(metric: str, value: float, digits: int = 4) -> str:
    """'recall >= 0.9123' or 'flagged <= 0.0200'."""
    return f"{metric} {relation(metric)} {value:.{digits}f}"


@dataclass(frozen=True)
class Target:
    """One requirement: recall >= level, precision >= level, or flagged share <= level."""

    metric: str
    """recall | precision | flagged"""
    level: float

    @property
    def relation(self) -> str:
        return relation(self.metric)

    @property
    def risk_level(self) -> float:
        """The level the tested risk must stay under: the miss rate, the false-discovery rate
        or the flag rate."""
        return self.level if self.metric == "flagged" else 1.0 - self.level

    def holds(self, value):
        """Whether `value` (a number or an array) meets the target."""
        if self.metric == "flagged":
            return value <= self.level + _EPS
        return value >= self.level - _EPS

    def __str__(self) -> str:
        return f"{self.metric}{self.relation}{self.level:g}"


@dataclass(frozen=True)
class Objective:
    """A parsed objective: F-beta (`beta`), or a recall or precision target (`primary`) with an
    optional flag budget (`budget`). `text` is its canonical spelling."""

    text: str
    beta: float | None = None
    primary: Target | None = None
    """The recall or precision target; the other metric is what the choice then favours."""
    budget: Target | None = None
    """An optional flagged<=F budget."""

    @classmethod
    def parse(cls, text: str) -> Objective:
        if not isinstance(text, str) or not text.strip():
            raise UsageError(f"empty objective; {USE}")
        t = text.replace(" ", "").lower()
        if m := _FBETA.fullmatch(t):
            beta = float(m.group(1))
            if beta <= 0:
                raise UsageError(f"objective {text!r}: beta must be positive")
            return cls(f"f{beta:g}", beta=beta)
        targets: dict[str, Target] = {}
        for part in t.split(","):
            target = _target(text, part)
            if target.metric in targets:
                raise UsageError(f"objective {text!r}: {target.metric} is given twice")
            targets[target.metric] = target
        if "recall" in targets and "precision" in targets:
            raise UsageError(
                f"objective {text!r}: give recall or precision, not both; the other one is what "
                "the chosen threshold then favours"
            )
        if "recall" not in targets and "precision" not in targets:
            raise UsageError(
                f"objective {text!r}: a flag budget alone has nothing to favour; pair it with "
                "recall>=R or precision>=P"
            )
        primary = targets.get("recall") or targets["precision"]
        budget = targets.get("flagged")
        canonical = ",".join(str(x) for x in (primary, budget) if x is not None)
        return cls(canonical, primary=primary, budget=budget)

    @property
    def kind(self) -> str:
        """fbeta | recall | precision (the constrained metric)."""
        return "fbeta" if self.primary is None else self.primary.metric

    @property
    def metric(self) -> str:
        """The name of the value maximised."""
        if self.beta is not None:
            return "f1" if self.beta == 1 else f"f{self.beta:g}"
        return "precision" if self.kind == "recall" else "recall"

    @property
    def targets(self) -> tuple[Target, ...]:
        return tuple(x for x in (self.primary, self.budget) if x is not None)

    def values(self, c: Counts) -> np.ndarray:
        """The value maximised at each threshold; -inf where a target fails."""
        if self.beta is not None:
            return c.fbeta(self.beta)
        value = c.precision if self.kind == "recall" else c.recall
        met = np.ones(np.shape(value), dtype=bool)
        for target in self.targets:
            met &= target.holds(getattr(c, target.metric))
        return np.where(met, value, -np.inf)

    def certifiable(self) -> Objective:
        """This objective, if a certificate can be given for it; else a UsageError."""
        if self.primary is None:
            raise UsageError(
                f"{self.text} cannot be certified: certify recall>=R or precision>=P, "
                "optionally with ',flagged<=F'"
            )
        for target in self.targets:
            if not 0 < target.level < 1:
                raise UsageError(
                    f"objective {self.text!r}: a certified {target.metric} level must lie "
                    f"strictly between 0 and 1, got {target.level:g}"
                )
        return self


def _target(text: str, part: str) -> Target:
    m = _PART.fullmatch(part)
    if m is None or m.group(3) is None:
        raise UsageError(f"objective {text!r}: cannot read {part!r}; {USE}")
    metric, op, number = m.groups()
    if op != relation(metric):
        raise UsageError(
            f"objective {text!r}: {metric} takes {relation(metric)}, as in "
            f"{metric}{relation(metric)}{number}"
        )
    level = float(number)
    if not 0 < level <= 1:
        raise UsageError(f"objective {text!r}: the {metric} level must lie in (0, 1], got {number}")
    return Target(metric, level)
