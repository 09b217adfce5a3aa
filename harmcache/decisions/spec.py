"""`SweepSpec`: the options of a threshold sweep, declared once. `harmcache sweep-threshold`
builds its flags from these fields and `harmcache.sweep_threshold()` takes the same ones, so a
default cannot differ between the two."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from harmcache.decisions.grid import DEFAULT_GRID
from harmcache.decisions.objective import Objective
from harmcache.decisions.sweep import SweepResult, certified_sweep, sweep
from harmcache.errors import UsageError
from harmcache.options import at_least, setting, validate


def _confidence(value: float | None) -> str | None:
    if value is None or 0 < value < 1:
        return None
    return f"must lie strictly between 0 and 1, got {value:g}"


@dataclass(frozen=True)
class SweepSpec:
    """How to choose a decision threshold from labelled scores."""

    objective: str = setting(
        "f1",
        help="f1 | f<beta> (f2, f0.5) | recall>=R | precision>=P, optionally with ',flagged<=F'.",
    )
    confidence: float | None = setting(
        None,
        help="Certify the objective at this confidence (e.g. 0.9): Learn-Then-Test.",
        check=_confidence,
    )
    grid: str | None = setting(
        None,
        help=f"start:stop:step, a comma list, or 'scores' (every distinct score). Default: "
        f"{DEFAULT_GRID}; with --confidence, the certificate's own (every distinct score for "
        f"recall, {DEFAULT_GRID} for precision).",
    )
    bootstrap: int = setting(
        1000,
        help="Bootstrap replicates (0: none). None with --confidence: the certificate is the "
        "statement about uncertainty.",
        check=at_least(0),
    )
    review_band: str | tuple[float, float] | None = setting(
        None,
        help="P_HIGH,R_LOW: block at precision>=P_HIGH, review to recall>=R_LOW.",
    )
    seed: int = setting(0, help="Bootstrap seed.")

    def __post_init__(self) -> None:
        validate(self)
        Objective.parse(self.objective)  # a bad objective is refused before any file is read
        if self.confidence is not None and self.review_band is not None:
            raise UsageError("--review-band and --confidence exclude each other")
        self.band()

    @classmethod
    def build(cls, spec: SweepSpec | None = None, **options: Any) -> SweepSpec:
        """`spec` (default: the defaults) with `options` replaced; None options are left out."""
        given = {k: v for k, v in options.items() if v is not None}
        unknown = set(given) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown sweep option(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(spec or cls(), **given)

    def band(self) -> tuple[float, float] | None:
        """The review band as (precision_high, recall_low)."""
        value = self.review_band
        if value is None:
            return None
        parts = value.split(",") if isinstance(value, str) else value
        try:
            high, low = (float(x) for x in parts)
        except (TypeError, ValueError):
            raise UsageError(
                f"--review-band {value!r}: expected P_HIGH,R_LOW, e.g. 0.95,0.98 (block where "
                "precision >= 0.95; review down to where recall >= 0.98)"
            ) from None
        if not (0 < high <= 1 and 0 < low <= 1):
            raise UsageError("--review-band bounds must be in (0, 1]")
        return high, low

    def choose(self, y: np.ndarray, scores: np.ndarray) -> SweepResult:
        """The plain sweep, or with a confidence the certified threshold."""
        if self.confidence is not None:
            return certified_sweep(y, scores, self.objective, self.confidence, self.grid)
        return sweep(
            y,
            scores,
            self.objective,
            self.grid,
            bootstrap=self.bootstrap,
            seed=self.seed,
            review_band=self.band(),
        )
