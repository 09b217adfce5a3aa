"""What a head tells while it trains: one `EpochReport` per epoch (or per non-iterative fit),
given to the `on_epoch` callback and kept in the head's history.

With one category the report holds the validation threshold table and the best F1 on the 0.01
grid. With K > 1 categories it holds, per category, the labelled validation videos, best F1
(and its threshold) and AP on them, and the mean over the categories whose validation videos
hold both classes; `format` prints that as a small table with one line per category.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from harmcache import metrics
from harmcache.decisions import table
from harmcache.heads.targets import has_both_classes, labelled

log = logging.getLogger(__name__)


@dataclass
class EpochReport:
    """What one epoch (or a whole non-iterative fit) did; the validation fields are None (and
    `rows` empty) when the head was fitted without an `eval_set`."""

    epoch: int
    epochs: int
    train_loss: float
    seconds: float
    val_loss: float | None = None
    rows: list[dict] = field(default_factory=list)
    """`table.threshold_rows` at 0.30..0.70 (one category only)."""
    best_f1: float | None = None
    """Best F1 over the 0.01..0.99 grid; with K > 1 categories, the mean of each category's."""
    best_threshold: float | None = None
    """Where `best_f1` is reached (one category only)."""
    monitor: float | None = None
    """The early-stopping value this epoch."""
    improved: bool = False
    localization: dict | None = None
    """Per-second segment AUROC/AP of the validation timelines against an events file, when
    training was given one (`train --events`); filled by the epoch callback."""
    categories: list[dict] | None = None
    """With K > 1 categories, one entry per category (`category_summary`); else None."""
    category_names: list[str] | None = None
    """What the categories are called, when the caller knows (a head knows only positions)."""

    @classmethod
    def validated(
        cls,
        epoch: int,
        epochs: int,
        train_loss: float,
        seconds: float,
        *,
        y_val: np.ndarray,
        scores: np.ndarray,
        val_loss: float,
        monitor: float,
        improved: bool,
    ) -> EpochReport:
        """A report with the validation figures computed from `scores`: `y_val` and `scores`
        are (n, K), each category read on its labelled rows only."""
        y_val = y_val.reshape(len(y_val), -1)
        scores = scores.reshape(len(scores), -1)
        if y_val.shape[1] == 1:
            rows, y = labelled(y_val, 0)
            f1, threshold = metrics.best_f1(y, scores[rows, 0])
            table_rows = table.threshold_rows(y, scores[rows, 0])
            return cls(epoch, epochs, train_loss, seconds, val_loss, table_rows, f1, threshold,
                       monitor, improved)  # fmt: skip
        categories = [category_summary(y_val, scores, k) for k in range(y_val.shape[1])]
        known = [c["best_f1"] for c in categories if c["best_f1"] is not None]
        return cls(epoch, epochs, train_loss, seconds, val_loss, [], float(np.mean(known)), None,
                   monitor, improved, categories=categories)  # fmt: skip

    @classmethod
    def single_fit(
        cls,
        train_loss: float,
        seconds: float,
        val: tuple | None = None,
        scores: np.ndarray | None = None,
        val_loss: float | None = None,
    ) -> EpochReport:
        """The one report of a head fitted in one go (LightGBM, logreg): its training loss,
        and the validation figures when a validation set was given."""
        if val is None:
            return cls(1, 1, train_loss, seconds)
        return cls.validated(1, 1, train_loss, seconds, y_val=val[1], scores=scores,
                             val_loss=val_loss, monitor=val_loss, improved=True)  # fmt: skip

    def format(self) -> str:
        val = "" if self.val_loss is None else f"  val loss {self.val_loss:.4f}"
        head = (
            f"epoch {self.epoch}/{self.epochs}  train loss {self.train_loss:.4f}{val}  "
            f"({self.seconds:.1f}s)"
        )
        if self.categories is not None:
            lines = [head, *self._category_lines()]
        elif not self.rows:
            return head
        else:
            best = table.best_row(self.rows)
            tail = (
                f"  best in table: F1 {best['f1']:.4f} at {best['threshold']:.2f};"
                f" best on 0.01 grid: F1 {self.best_f1:.4f} at {self.best_threshold:.2f}"
                + ("  *" if self.improved else "")
            )
            lines = [head, table.format_rows(self.rows, best), tail]
        if self.localization is not None:
            lines.append(localization_line(self.localization))
        return "\n".join(lines)

    def _category_lines(self) -> list[str]:
        names = self.category_names or [str(c["category"]) for c in self.categories]
        width = max(8, *map(len, names))
        lines = [f"  {'category':<{width}}  labelled  harmful   best F1   thr      AP"]
        for c, name in zip(self.categories, names):
            if c["best_f1"] is None:
                figures = f"{'n/a':>8}  {'':4}  {'n/a':>6}"
            else:
                figures = f"{c['best_f1']:8.4f}  {c['best_threshold']:4.2f}  {c['ap']:6.4f}"
            lines.append(f"  {name:<{width}}  {c['labelled']:8d}  {c['harmful']:7d}  {figures}")
        known = [c for c in self.categories if c["best_f1"] is not None]
        ap = float(np.mean([c["ap"] for c in known]))
        lines.append(
            f"  mean over {len(known)} of {len(self.categories)} categories: best F1 "
            f"{self.best_f1:.4f}, AP {ap:.4f}" + ("  *" if self.improved else "")
        )
        return lines

    def to_json(self) -> dict:
        return {
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "best_f1": self.best_f1,
            "best_threshold": self.best_threshold,
            "monitor": self.monitor,
            "improved": self.improved,
            "seconds": self.seconds,
            **({} if self.localization is None else {"localization": self.localization}),
            **({} if self.categories is None else {"categories": self.categories}),
        }


def category_summary(y: np.ndarray, scores: np.ndarray, k: int) -> dict:
    """Category `k` on its labelled rows of `y` and `scores` (both (n, K)): how many, how many
    harmful, best F1 with its threshold, and AP; the figures are None when those rows lack a
    class."""
    from sklearn.metrics import average_precision_score

    rows, labels = labelled(y, k)
    out = {"category": k, "labelled": len(rows), "harmful": int(labels.sum())}
    if not has_both_classes(y[:, k : k + 1])[0]:
        return {**out, "best_f1": None, "best_threshold": None, "ap": None}
    f1, threshold = metrics.best_f1(labels, scores[rows, k])
    ap = float(average_precision_score(labels, scores[rows, k]))
    return {**out, "best_f1": f1, "best_threshold": threshold, "ap": ap}


def localization_line(loc: dict) -> str:
    """'  per second on validation: AUROC 0.97, AP 0.91 (412 s, 38 harmful)'."""
    auroc, ap = loc.get("segment_auroc"), loc.get("segment_ap")
    shown = ", ".join(
        f"{name} {value:.4f}" if value is not None else f"{name} n/a"
        for name, value in (("AUROC", auroc), ("AP", ap))
    )
    return (
        f"  per second on validation: {shown} ({loc.get('n_seconds', 0)} s, "
        f"{loc.get('n_positive_seconds', 0)} harmful)"
    )


EpochCallback = Callable[[EpochReport], None]


def log_epoch(report: EpochReport) -> None:
    """The default epoch callback: the report goes to the log."""
    log.info("%s", report.format())
