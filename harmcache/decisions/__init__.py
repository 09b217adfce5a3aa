"""Turning scores into decisions, in one place.

    rule.py             the rule: a video is flagged when score >= threshold; confusion counts
    objective.py        what a threshold is chosen for: f1, f<beta>, recall>=R, precision>=P,
                        optionally with flagged<=F (one parser for sweeps and certificates)
    grid.py             the candidate thresholds: the default 0.01..0.99 grid and --grid text
    sweep.py            choosing a threshold on validation scores (ties, review band)
    bootstrap.py        confidence intervals for a sweep
    certify.py          certifying a threshold with a finite-sample guarantee (Learn Then Test)
    spec.py             `SweepSpec`: the options of a sweep, with their defaults, declared once
    operating_point.py  what threshold.json holds, and `apply(scores)` that every caller uses
    plot.py             the threshold plot

Every module that turns a score into a label goes through `OperatingPoint.apply` (or
`rule.flags` for arrays of thresholds); tests/test_layers.py checks that no other module
compares scores with a threshold.
"""
