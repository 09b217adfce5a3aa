"""What `train` did (`RunResult`), and how it reads: the lines `harmcache train` prints and the
JSON object of `--json`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harmcache.store.family import Family
from harmcache.train.join_report import JoinReport
from harmcache.train.report import describe_localization, headline


@dataclass
class RunResult:
    """What `train` did."""

    run_dir: Path
    join: JoinReport
    families: dict[str, Family]
    counts: dict[str, dict[str, int]]
    """split → {"videos", "harmful"}"""
    metrics: dict
    """test (None without a test split), val (tuned on), calibration, counts, ..."""
    threshold: dict
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """What the user should know about the split (videos assigned anew, a class missing)."""
    head: str = ""
    """The head's name: transformer, lightgbm, logreg, mil."""
    thresholds: dict[str, dict] = field(default_factory=dict)
    """category → its threshold.json"""

    def lines(self) -> list[str]:
        """The summary, one line each: what was left out, the notes, the split, the test
        numbers (or the validation ones, without a test split), calibration, localization."""
        val, test, t, c = self.metrics["val"], self.metrics["test"], self.threshold, self.counts
        out = [
            f"warning: left {extractor} features out: {why}; pass --features to choose"
            for extractor, why in sorted(self.join.left_out.items())
        ]
        out += [f"note: {note}" for note in self.notes]
        out.append(
            "split: "
            + ", ".join(f"{part} {c[part]['videos']} ({c[part]['harmful']} harmful)" for part in c)
        )
        families = ", ".join(f.name for f in self.families.values())
        if "categories" in self.metrics:
            out += self._category_lines(families)
        elif test is not None:
            out.append(
                f"{self.head} on {families}: test {headline(test)} at threshold "
                f"{t['threshold']:.2f}"
            )
            out.append(f"  tuned on validation: {headline(val)}")
        else:
            out.append(
                f"{self.head} on {families}: validation (tuned on; no test split) "
                f"{headline(val)} at threshold {t['threshold']:.2f}"
            )
        cal = self.metrics["calibration"]
        if cal["method"] != "none" and "test" in cal and "categories" not in self.metrics:
            out.append(
                f"calibration ({cal['method']}, fitted on validation): test ECE "
                f"{cal['test']['ece_raw']:.4f} -> {cal['test']['ece']:.4f}, Brier "
                f"{cal['test']['brier_raw']:.4f} -> {cal['test']['brier']:.4f}"
            )
        loc = self.metrics.get("localization")
        for part, subset in (("val", "validation"), ("test", "test")) if loc else ():
            if part in loc:
                shown = {**loc[part], "subset": subset, "tuned_on": part == "val"}
                out.append(describe_localization(shown))
        out.append(f"run written to {self.run_dir}; next: harmcache sweep-threshold {self.run_dir}")
        return out

    def _category_lines(self, families: str) -> list[str]:
        """One line per category: its test numbers (validation without a test split) at its
        own threshold, then the macro and micro averages."""
        per = self.metrics["categories"]
        subset = "test" if self.metrics["test"] is not None else "validation (tuned on)"
        out = [f"{self.head} on {families}: {len(per)} categories, {subset} at their thresholds"]
        width = max(len(c) for c in per)
        for name, m in per.items():
            shown = m["test"] if m["test"] is not None else m["val"]
            out.append(
                f"  {name:{width}} {headline(shown)} at {self.thresholds[name]['threshold']:.2f}"
            )
        a = self.metrics["test"] or self.metrics["val"]
        out.append(
            f"  macro F1 {a['macro']['f1']:.4f}, AUROC {a['macro']['auroc']:.4f}; micro F1 "
            f"{a['micro']['f1']:.4f}"
        )
        return out

    def to_json(self) -> dict:
        """The headline numbers (test, or validation without a test split) and the rest."""
        val, test = self.metrics["val"], self.metrics["test"]
        shown = test if test is not None else val
        if "categories" in self.metrics:
            return {
                "run": str(self.run_dir),
                "subset": "test" if test is not None else "validation",
                **shown,
                "categories": {
                    name: {
                        **(m["test"] if m["test"] is not None else m["val"]),
                        "tuned_on": m["val"],
                        "calibration": m["calibration"],
                        "counts": m["counts"],
                    }
                    for name, m in self.metrics["categories"].items()
                },
                "thresholds": {name: t["threshold"] for name, t in self.thresholds.items()},
                "join": self.join.to_json(),
                "counts": self.counts,
                "notes": self.notes,
            }
        return {
            "run": str(self.run_dir),
            "subset": "test" if test is not None else "validation",
            **{k: shown[k] for k in ("precision", "recall", "f1", "auroc", "ap")},
            "threshold": self.threshold["threshold"],
            "tuned_on": val,
            "calibration": self.metrics["calibration"],
            "join": self.join.to_json(),
            "counts": self.counts,
            "notes": self.notes,
            "localization": self.metrics.get("localization"),
        }
