"""What a head learns from: one 0/1 label per video and moderation category, NaN where the
category is not labelled for that video.

`fit` takes labels of shape (n,) (one category) or (n, K); `check_targets` turns either into
an (n, K) float64 array of 0, 1 and NaN, and every head works on that one form, so one category
is the same code path as many. A NaN cell is masked, never read as 0: it counts in no loss, no
class weight and no metric. A category is named by its column index: the names belong to the
labels file, not to the heads.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from harmcache.errors import DataError, UsageError


def check_targets(y: np.ndarray, what: str, *, training: bool = True) -> np.ndarray:
    """`y` ((n,) or (n, K)) as an (n, K) float64 array of 0, 1 and NaN.

    In a training set every category needs both classes among its labelled videos (else
    DataError). A validation set (`training=False`) may lack a class in some categories (their
    validation metrics are skipped) but needs both in at least one."""
    y = np.asarray(y)
    try:
        if y.dtype.kind not in "biufO":
            raise TypeError(y.dtype)
        values = y.reshape(len(y), -1).astype(np.float64)
    except (TypeError, ValueError):
        raise UsageError(
            f"{what} labels must be 0 (safe) or 1 (harmful), got {y.dtype} values"
        ) from None
    known = ~np.isnan(values)
    if not np.isin(values[known], (0, 1)).all():
        raise UsageError(
            f"{what} labels must be 0 (safe) or 1 (harmful), or NaN where a category is not "
            "labelled"
        )
    both = has_both_classes(values)
    if training and not both.all():
        raise DataError(_one_class(values, int(np.flatnonzero(~both)[0]), what))
    if not both.any():
        if values.shape[1] == 1:
            raise DataError(_one_class(values, 0, what))
        raise DataError(
            f"{what} needs both classes in at least one category; each of its "
            f"{values.shape[1]} categories has only one class among its labelled videos"
        )
    return values


def _one_class(values: np.ndarray, k: int, what: str) -> str:
    rows, labels = labelled(values, k)
    if values.shape[1] == 1:
        if len(rows) == 0:
            return f"{what} needs both classes; none of its {len(values)} videos is labelled"
        whole = "videos" if len(rows) == len(values) else "labelled videos"
        return f"{what} needs both classes; all {len(rows)} {whole} are labelled {labels[0]}"
    harmful = int(labels.sum())
    return (
        f"{what} needs both classes in every category; category {k} (column {k} of the labels) "
        f"has {harmful} harmful and {len(rows) - harmful} safe among its {len(rows)} labelled "
        "videos"
    )


def has_both_classes(y: np.ndarray) -> np.ndarray:
    """(K,) bool: the category has a 0 and a 1 among its labelled videos."""
    return (np.nansum(y, axis=0) > 0) & (np.nansum(1 - y, axis=0) > 0)


def labelled(y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Category `k`'s labelled rows of `y` (n, K), and their labels as int64 0/1."""
    rows = np.flatnonzero(~np.isnan(y[:, k]))
    return rows, y[rows, k].astype(np.int64)


def scorable(y: np.ndarray) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """`(k, rows, labels)` of each category with both classes among its labelled rows: those
    whose validation metrics (F1, AP) are defined."""
    for k in np.flatnonzero(has_both_classes(y)).tolist():
        yield (k, *labelled(y, k))


def class_counts(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K,) harmful and (K,) safe counts of each category's labelled videos, float64."""
    n_pos = np.nansum(y, axis=0)
    return n_pos, (~np.isnan(y)).sum(axis=0) - n_pos


def pos_weights(y: np.ndarray) -> np.ndarray:
    """(K,) n_safe / n_harmful over each category's labelled videos: the classes weigh the same."""
    n_pos, n_neg = class_counts(y)
    return n_neg / np.maximum(n_pos, 1.0)


def masked_log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """The mean over categories of each one's log-loss on its labelled rows (`y`, `p` (n, K));
    a category with no labelled row is left out."""
    losses = []
    for k in range(y.shape[1]):
        rows, labels = labelled(y, k)
        if not len(rows):
            continue
        pk = np.clip(p[rows, k], 1e-12, 1 - 1e-12)
        losses.append(float(-np.mean(labels * np.log(pk) + (1 - labels) * np.log(1 - pk))))
    return float(np.mean(losses))
