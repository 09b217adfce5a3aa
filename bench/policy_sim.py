"""How often a certified moderation policy keeps all its promises at once, and what that costs.

A population of videos over four overlapping categories (violence, weapons, gore, drugs):
labels from a Gaussian copula (violence, weapons and gore go together), and per category a
score drawn from Beta distributions, higher for a video positive in a related category (a head
confuses weapons with violence). A held-out population of `POPULATION` videos drawn the same
way stands in for the truth. Each draw is a calibration set of `N` videos, each label missing
at random with chance `MISSING` (a blank, not a 0), on which
`harmcache.decisions.policy.certify_policy` certifies POLICY: remove at precision >= 0.95 and
review to recall >= 0.9 in every category, at most 10 % of videos to review, 90 % joint
confidence (9 promises, each at delta/9). The JSON reports

- joint_coverage: share of draws where every certified promise held together on the
  population (the guarantee: at least the confidence);
- within_budget_share: share of draws whose review share on the population stayed within the
  budget, and budget_certified_rate, share where the bound certified it;
- threshold_gap: per category and band, the mean certified threshold minus the oracle's (the
  population's best threshold meeting the target), for the joint policy and for the same band
  certified alone at 90 %: the difference is the price of the joint guarantee;
- refusal_rate: share of band promises refused, per band and overall.

    python -m bench.policy_sim [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

from bench.meta import run_metadata

REPO = Path(__file__).resolve().parent.parent
MEASURED = [
    "harmcache/decisions/policy.py",
    "harmcache/decisions/actions.py",
    "harmcache/decisions/certify.py",
    "bench/policy_sim.py",
]
CATEGORIES = ["violence", "weapons", "gore", "drugs"]
PREVALENCE = np.array([0.12, 0.08, 0.06, 0.06])
CORRELATION = np.array(
    [
        [1.0, 0.6, 0.5, 0.1],
        [0.6, 1.0, 0.3, 0.1],
        [0.5, 0.3, 1.0, 0.0],
        [0.1, 0.1, 0.0, 1.0],
    ]
)
RELATED = {0: [1, 2], 1: [0], 2: [0], 3: []}
"""A video positive in a related category scores higher in this one."""
POSITIVE, CONFUSED, NEGATIVE = (5.0, 1.5), (2.0, 4.5), (1.0, 14.0)
"""Beta(a, b) of a category's score: positive, negative but related-positive, negative."""
POLICY = {
    "confidence": 0.9,
    "review_budget": 0.10,
    "categories": {c: {"remove": "precision>=0.95", "review": "recall>=0.9"} for c in CATEGORIES},
}
N = 8000
MISSING = 0.2
POPULATION = 1_000_000


def draw(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(n, 4) labels and scores from the population."""
    z = rng.multivariate_normal(np.zeros(4), CORRELATION, size=n)
    y = z > stats.norm.isf(PREVALENCE)
    s = np.empty((n, 4))
    for k in range(4):
        related = y[:, RELATED[k]].any(axis=1) if RELATED[k] else np.zeros(n, dtype=bool)
        kind = np.where(y[:, k], 0, np.where(related, 1, 2))
        for i, (a, b) in enumerate((POSITIVE, CONFUSED, NEGATIVE)):
            at = kind == i
            s[at, k] = rng.beta(a, b, size=int(at.sum()))
    return y, s


class Truth:
    """Population metrics, read off the held-out population."""

    def __init__(self, rng):
        self.y, self.s = draw(POPULATION, rng)
        self.pos = [np.sort(self.s[self.y[:, k], k]) for k in range(4)]
        self.neg = [np.sort(self.s[~self.y[:, k], k]) for k in range(4)]

    def _above(self, k: int, t: float) -> tuple[int, int]:
        pos, neg = self.pos[k], self.neg[k]
        return len(pos) - np.searchsorted(pos, t), len(neg) - np.searchsorted(neg, t)

    def recall(self, k: int, t: float) -> float:
        return self._above(k, t)[0] / len(self.pos[k])

    def precision(self, k: int, t: float) -> float:
        tp, fp = self._above(k, t)
        return tp / (tp + fp) if tp + fp else 1.0

    def review_share(self, bands) -> float:
        from harmcache.decisions.actions import review_share

        return review_share(bands, {c: self.s[:, k] for k, c in enumerate(CATEGORIES)})

    def oracle(self, k: int, band: str, level: float) -> float:
        """The population's best threshold: the lowest meeting precision (most recall), the
        highest meeting recall (least review)."""
        if band == "review":
            pos = self.pos[k]
            return float(pos[int(np.floor((1 - level) * len(pos)))])
        grid = np.round(np.arange(0.001, 1.0, 0.001), 3)
        ok = [t for t in grid if self.precision(k, t) >= level]
        return float(min(ok))


def simulate(draws: int, seed: int = 0) -> dict:
    from harmcache.decisions.category_scores import CategoryScores
    from harmcache.decisions.certify import certify
    from harmcache.decisions.policy import Policy, certify_policy

    policy = Policy.from_dict(POLICY)
    truth = Truth(np.random.default_rng(seed + 1))
    rng = np.random.default_rng(seed)
    levels = {"remove": 0.95, "review": 0.9}
    oracle = {(k, b): truth.oracle(k, b, levels[b]) for k in range(4) for b in ("remove", "review")}
    oracle_bands = {c: (oracle[k, "review"], oracle[k, "remove"]) for k, c in enumerate(CATEGORIES)}
    joint_gap = {key: [] for key in oracle}
    alone_gap = {key: [] for key in oracle}
    refused = {key: 0 for key in oracle}
    needed = {key: [] for key in oracle}  # per refused band: (positives had, positives needed)
    failed = {key: 0 for key in oracle}
    held, within, certified_budget, shares, bounds, empirical = [], [], [], [], [], []
    start = time.perf_counter()
    for _ in range(draws):
        y, s = draw(N, rng)
        labels = np.where(rng.random(y.shape) < MISSING, np.nan, y.astype(float))
        data = CategoryScores(CATEGORIES, [str(i) for i in range(N)], labels, s)
        cert = certify_policy(policy, data)
        ok = True
        for k, c in enumerate(CATEGORIES):
            for band, b in cert.bands[c].items():
                if not b.certified:
                    refused[k, band] += 1
                    needed[k, band].append((b.n_positive, b.needed_positives))
                    continue
                certified = b.threshold if b.clamped_from is None else b.clamped_from
                joint_gap[k, band].append(certified - oracle[k, band])
                metric = truth.precision if band == "remove" else truth.recall
                kept = metric(k, b.threshold) >= levels[band]
                failed[k, band] += not kept
                ok &= kept
            yk, sk = data.labelled(c)
            for band, text in POLICY["categories"][c].items():
                alone = certify(yk, sk, text, confidence=POLICY["confidence"])
                if alone.certified:
                    alone_gap[k, band].append(alone.threshold - oracle[k, band])
        share = truth.review_share(cert.thresholds())
        within.append(share <= POLICY["review_budget"])
        certified_budget.append(bool(cert.budget_certified))
        if cert.budget_certified:
            ok &= share <= POLICY["review_budget"]
        held.append(ok)
        shares.append(share)
        bounds.append(cert.review_share_bound)
        empirical.append(cert.review_share)
    seconds = time.perf_counter() - start

    def gap(values: list[float]) -> dict:
        v = np.array(values)
        if not len(v):
            return {"mean": None, "mean_abs": None, "certified": 0}
        return {"mean": _r(v.mean()), "mean_abs": _r(np.abs(v).mean()), "certified": len(v)}

    gaps = {
        f"{c} {b}": {
            "oracle": _r(oracle[k, b]),
            "joint": gap(joint_gap[k, b]),
            "alone": gap(alone_gap[k, b]),
        }
        for k, c in enumerate(CATEGORIES)
        for b in ("remove", "review")
    }
    bands_total = draws * len(oracle)

    def per_band(counts: dict) -> dict:
        return {f"{CATEGORIES[k]} {b}": n / draws for (k, b), n in counts.items()}

    return {
        "joint_coverage": float(np.mean(held)),
        "confidence": POLICY["confidence"],
        "within_budget_share": float(np.mean(within)),
        "budget_certified_rate": float(np.mean(certified_budget)),
        "refusal_rate": _r(sum(refused.values()) / bands_total),
        "refusal_rate_per_band": per_band(refused),
        "refused_positives_median": {
            f"{CATEGORIES[k]} {b}": {
                "had": _median([h for h, _ in v]),
                "needed": _median([x for _, x in v if x is not None]),
                "no_amount_would_do": sum(x is None for _, x in v),
            }
            for (k, b), v in needed.items()
            if v
        },
        "error_rate_per_band": per_band(failed),
        "budget_error_rate": float(np.mean(np.array(certified_budget) & ~np.array(within))),
        "review_share": {
            "population_mean": _r(np.mean(shares)),
            "population_max": _r(np.max(shares)),
            "calibration_mean": _r(np.mean(empirical)),
            "bound_mean": _r(np.mean(bounds)),
            "at_oracle_thresholds": _r(truth.review_share(oracle_bands)),
        },
        "threshold_gap": gaps,
        "draws": draws,
        "n": N,
        "missing_label_rate": MISSING,
        "population": POPULATION,
        "prevalence": dict(zip(CATEGORIES, PREVALENCE.tolist())),
        "policy": POLICY,
        "ms_per_draw": round(seconds / draws * 1000, 2),
    }


def _median(values: list[int]) -> float | None:
    return float(np.median(values)) if values else None


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def metadata() -> dict:
    """The measured commit and machine (bench/meta.py), whether the files measured here differ
    from that commit, and the numerical libraries."""
    meta = run_metadata()
    out = subprocess.run(
        ["git", "status", "--porcelain", "--", *MEASURED],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    meta["measured_files_dirty"] = bool(out.stdout.strip())
    meta["libraries"] = {lib: __import__(lib).__version__ for lib in ("numpy", "scipy")}
    return meta


def run(results_dir: Path, quick: bool = False) -> dict:
    """Simulate, write results_dir/policy-sim-cpu[-quick].json, return the result."""
    draws = 100 if quick else 1000
    start = time.perf_counter()
    sim = simulate(draws)
    result = {
        "benchmark": "policy-sim",
        "joint_coverage": sim["joint_coverage"],
        "quick": quick,
        "summary": {
            "joint_coverage": f"{sim['joint_coverage']:.3f} (>= {sim['confidence']:g} promised)",
            "within_budget_share": f"{sim['within_budget_share']:.3f}",
            "budget_certified_rate": f"{sim['budget_certified_rate']:.3f}",
            "refusal_rate": f"{sim['refusal_rate']}",
            **{
                f"gap {name}": f"joint {g['joint']['mean']}, alone {g['alone']['mean']}"
                for name, g in sim["threshold_gap"].items()
            },
        },
        "what": " ".join(__doc__.split("\n\n")[:2]).replace("\n", " "),
        "seconds": round(time.perf_counter() - start, 1),
        **{k: v for k, v in sim.items() if k != "joint_coverage"},
        "meta": metadata(),
    }
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / ("policy-sim-cpu-quick.json" if quick else "policy-sim-cpu.json")
    path.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    out = run(REPO / "bench" / "results", quick="--quick" in sys.argv)
    print(json.dumps(out["summary"], indent=2))
