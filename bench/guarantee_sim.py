"""How often certified thresholds keep their promise, and what the promise costs.

Calibration sets are drawn from known score distributions (Beta per class), so every population
metric at a threshold is exact. For each setting (videos n, prevalence, objective, confidence)
`harmcache.decisions.certify.certify` runs on `draws` independent sets; the JSON reports

- certified_rate: share of sets where a threshold was certified;
- error_rate: share of sets where a certified threshold misses a target on the population
  (the guarantee: at most delta = 1 - confidence);
- coverage: share of certified sets whose threshold meets every target;
- recall_gap_to_oracle: the oracle is the best threshold meeting every target on the
  population. For recall>=R, mean population recall at the certified threshold minus the
  oracle's (which is R): recall bought beyond the target, paid for in flags. For precision>=P,
  the oracle's recall minus the mean recall at the certified threshold: recall given up;
- flagged_gap_to_oracle: mean share of videos flagged beyond the oracle threshold's;
- naive_coverage (recall only): the same coverage for the plain validation choice, the highest
  threshold whose empirical recall on the set is >= R, which carries no guarantee.

    python -m bench.guarantee_sim [--quick]
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import optimize, stats

from bench.meta import run_metadata

REPO = Path(__file__).resolve().parent.parent
MEASURED = ["harmcache/decisions/certify.py", "bench/guarantee_sim.py"]
OVERLAP = ((4, 2), (2, 4))  # positives ~ Beta(4, 2), negatives ~ Beta(2, 4): AUC 0.83
SEPARATED = ((6, 2), (2, 6))  # AUC 0.94


@dataclass(frozen=True)
class Setting:
    n: int
    prevalence: float
    objective: str
    confidence: float
    world: tuple = OVERLAP

    @property
    def name(self) -> str:
        world = "overlap" if self.world == OVERLAP else "separated"
        return (
            f"{self.objective} conf={self.confidence:g} n={self.n} prev={self.prevalence:g} {world}"
        )


SETTINGS = [
    Setting(200, 0.3, "recall>=0.9", 0.9),
    Setting(200, 0.4, "recall>=0.9", 0.9),
    Setting(500, 0.3, "recall>=0.9", 0.9),
    Setting(1000, 0.3, "recall>=0.9", 0.9),
    Setting(200, 0.3, "recall>=0.9", 0.95),
    Setting(200, 0.3, "recall>=0.95", 0.9),
    Setting(1000, 0.3, "recall>=0.95", 0.95),
    Setting(100, 0.1, "recall>=0.9", 0.9),
    Setting(1000, 0.3, "recall>=0.9,flagged<=0.6", 0.9),
    Setting(200, 0.3, "precision>=0.8", 0.9),
    Setting(1000, 0.3, "precision>=0.8", 0.9),
    Setting(500, 0.3, "precision>=0.8", 0.9, SEPARATED),
    Setting(1000, 0.3, "precision>=0.8", 0.9, SEPARATED),
    Setting(1000, 0.3, "precision>=0.9", 0.9, SEPARATED),
    Setting(1000, 0.3, "precision>=0.8,flagged<=0.3", 0.9, SEPARATED),
]


class World:
    def __init__(self, setting: Setting):
        (a1, b1), (a0, b0) = setting.world
        self.pos, self.neg, self.prevalence = (
            stats.beta(a1, b1),
            stats.beta(a0, b0),
            setting.prevalence,
        )

    def draw(self, n: int, draws: int, rng) -> tuple[np.ndarray, np.ndarray]:
        y = (rng.random((draws, n)) < self.prevalence).astype(int)
        s = np.where(
            y == 1,
            self.pos.rvs((draws, n), random_state=rng),
            self.neg.rvs((draws, n), random_state=rng),
        )
        return y, s

    def recall(self, t):
        return self.pos.sf(t)

    def flagged(self, t):
        return self.prevalence * self.pos.sf(t) + (1 - self.prevalence) * self.neg.sf(t)

    def precision(self, t):
        return self.prevalence * self.pos.sf(t) / self.flagged(t)

    def oracle(self, objective) -> float:
        """The best threshold meeting every target on the population."""
        metric, level = objective.primary.metric, objective.primary.level
        if metric == "recall":
            best = float(self.pos.isf(level))
        else:
            best = optimize.brentq(lambda t: self.precision(t) - level, 1e-4, 1 - 1e-4)
        if objective.budget is not None:
            budget = objective.budget.level
            lowest = optimize.brentq(lambda t: self.flagged(t) - budget, 1e-6, 1 - 1e-6)
            if metric == "precision":
                best = max(best, lowest)
            elif best < lowest:
                raise ValueError(f"{objective.text} cannot be met on the population")
        return best


def simulate(setting: Setting, draws: int, seed: int) -> dict:
    from harmcache.decisions.certify import certify
    from harmcache.decisions.objective import Objective

    obj = Objective.parse(setting.objective)
    world = World(setting)
    y, s = world.draw(setting.n, draws, np.random.default_rng(seed))
    thresholds = np.full(draws, np.nan)
    needed: list[int] = []
    no_data_helps = 0
    start = time.perf_counter()
    for i in range(draws):
        c = certify(y[i], s[i], obj, confidence=setting.confidence)
        if c.certified:
            thresholds[i] = c.threshold
        elif c.needed_positives is None:
            no_data_helps += 1
        else:
            needed.append(c.needed_positives)
    seconds = (time.perf_counter() - start) / draws

    ok = np.isfinite(thresholds)
    t = thresholds[ok]
    meets = (
        world.recall(t) >= obj.primary.level
        if obj.primary.metric == "recall"
        else (world.precision(t) >= obj.primary.level)
    )
    if obj.budget is not None:
        meets &= world.flagged(t) <= obj.budget.level
    oracle_t = world.oracle(obj)
    if obj.primary.metric == "recall":
        oracle_recall = float(world.recall(oracle_t))
        recall_gap = float(np.mean(world.recall(t)) - oracle_recall) if ok.any() else None
    else:
        recall_gap = float(world.recall(oracle_t) - np.mean(world.recall(t))) if ok.any() else None
    out = {
        "setting": {
            "n": setting.n,
            "prevalence": setting.prevalence,
            "objective": setting.objective,
            "confidence": setting.confidence,
            "positives": {"a": setting.world[0][0], "b": setting.world[0][1]},
            "negatives": {"a": setting.world[1][0], "b": setting.world[1][1]},
        },
        "draws": draws,
        "certified_rate": float(ok.mean()),
        "error_rate": float((~meets).sum() / draws),
        "delta": round(1 - setting.confidence, 12),
        "coverage": float(meets.mean()) if ok.any() else None,
        "recall_gap_to_oracle": _round(recall_gap),
        "flagged_gap_to_oracle": _round(
            float(np.mean(world.flagged(t)) - world.flagged(oracle_t)) if ok.any() else None
        ),
        "oracle": {
            "threshold": round(oracle_t, 4),
            "recall": round(float(world.recall(oracle_t)), 4),
            "precision": round(float(world.precision(oracle_t)), 4),
            "flagged": round(float(world.flagged(oracle_t)), 4),
        },
        "mean_certified_threshold": _round(float(t.mean()) if ok.any() else None),
        "needed_positives_median": statistics.median(needed) if needed else None,
        "no_data_helps_rate": no_data_helps / draws,
        "mean_positives": float(y.sum(axis=1).mean()),
        "ms_per_certify": round(seconds * 1000, 3),
    }
    if obj.primary.metric == "recall" and obj.budget is None:
        out["naive_coverage"] = float(
            np.mean(
                world.recall(naive_recall_thresholds(y, s, obj.primary.level)) >= obj.primary.level
            )
        )
    return out


def naive_recall_thresholds(y: np.ndarray, s: np.ndarray, target: float) -> np.ndarray:
    """The highest threshold whose empirical recall on the set is >= target."""
    out = np.empty(len(y))
    for i in range(len(y)):
        pos = np.sort(s[i][y[i] == 1])
        out[i] = pos[int(math.floor((1 - target) * len(pos) + 1e-9))]
    return out


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def metadata() -> dict:
    """The measured commit and machine as every benchmark records them, plus whether the files
    measured here differ from that commit."""
    meta = run_metadata()
    meta["measured_files_dirty"] = bool(_git("status", "--porcelain", "--", *MEASURED))
    versions = {}
    for lib in ("numpy", "scipy"):
        versions[lib] = __import__(lib).__version__
    meta["libraries"] = versions
    return meta


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    return out.stdout.strip()


def run(results_dir: Path, quick: bool = False) -> dict:
    """Simulate every setting, write results_dir/guarantee-sim[-quick].json, return the result."""
    draws = 200 if quick else 1000
    start = time.perf_counter()
    results = [simulate(s, draws, seed=i) for i, s in enumerate(SETTINGS)]
    result = {
        "benchmark": "guarantee-sim",
        "quick": quick,
        "meta": metadata(),
        "what": " ".join(__doc__.split("\n\n")[:2]).replace("\n", " "),
        "seconds": round(time.perf_counter() - start, 1),
        "settings": results,
        "summary": {
            s.name: (
                f"certified {r['certified_rate']:.2f}, errors {r['error_rate']:.3f} "
                f"(<= {r['delta']:g}), recall gap {r['recall_gap_to_oracle']}"
                + (f", naive coverage {r['naive_coverage']:.2f}" if "naive_coverage" in r else "")
            )
            for s, r in zip(SETTINGS, results)
        },
    }
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / ("guarantee-sim-quick.json" if quick else "guarantee-sim.json")
    path.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    out = run(REPO / "bench" / "results", quick="--quick" in sys.argv)
    print(json.dumps(out["summary"], indent=2))
