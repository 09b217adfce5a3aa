"""Stage-two numbers in words: the short forms that the results of train, evaluate and compare
print their lines with (`RunResult.lines()`, `Evaluation.lines()`, `Comparison.lines()`)."""

from __future__ import annotations

from harmcache.decisions.report import fmt


def headline(m: dict) -> str:
    """'F1 0.9000 (precision 0.8571, recall 0.9474); AUROC 0.9612, AP 0.9404'."""
    return (
        f"F1 {m['f1']:.4f} (precision {m['precision']:.4f}, recall {m['recall']:.4f}); "
        f"AUROC {fmt(m['auroc'])}, AP {fmt(m['ap'])}"
    )


def describe_localization(loc: dict) -> str:
    """One line of per-second localization (`harmcache.train.localize.localization`, with the
    subset it was measured on, its timeline kind and whether it was tuned on)."""
    tuned = " (tuned on)" if loc.get("tuned_on") else ""
    return (
        f"per second on {loc['subset']}{tuned}, {loc['timeline']} timeline: segment AUROC "
        f"{fmt(loc['segment_auroc'])} AP {fmt(loc['segment_ap'])} over {loc['n_seconds']} "
        f"seconds ({loc['n_positive_seconds']} in events) of {loc['n_videos']} videos "
        f"({loc['n_videos_with_events']} with events)"
    )
