"""Scores and labels over several categories, as a policy is certified on them.

One CSV row per video: a `path` (or `video_id`) column, and for each category C a score
column `C_score` in [0, 1] and a label column `C` holding 1, 0 or nothing. A blank label means
the video was not labelled for that category: it is masked (NaN), never read as 0, and a
category is certified on the rows labelled for it alone. A `C_score` column without its `C`
column leaves every row unlabelled for C. Other columns are ignored.

    path,violence,violence_score,weapons,weapons_score
    a.mp4,1,0.93,,0.40
    b.mp4,0,0.12,0,0.05
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harmcache.errors import DataError
from harmcache.user_files import read_user_text

CATEGORY_SCORES_FILE = "val_category_scores.csv"
"""A run's per-category validation scores, in the format above."""
POLICY_FILE = "policy.json"
"""A run's certified policy: `PolicyCertificate.to_json()`."""

SCORE_SUFFIX = "_score"
ID_COLUMNS = ("path", "video_id")
"""The id column's accepted names, the first present wins."""
_LABELS = {"1": 1.0, "1.0": 1.0, "0": 0.0, "0.0": 0.0, "": math.nan}


@dataclass
class CategoryScores:
    """Per-video scores (n, K) and labels (n, K) over `categories`; NaN labels are unlabelled."""

    categories: list[str]
    ids: list[str]
    """The video of each row: its path or video id."""
    labels: np.ndarray
    """(n, K) float: 1, 0, or NaN where the row is not labelled for the category."""
    scores: np.ndarray
    """(n, K) float in [0, 1]."""
    id_column: str = "path"

    def __post_init__(self) -> None:
        self.categories, self.ids = list(self.categories), list(self.ids)
        self.labels = np.asarray(self.labels, dtype=np.float64)
        self.scores = np.asarray(self.scores, dtype=np.float64)
        shape = (len(self.ids), len(self.categories))
        if self.labels.size != shape[0] * shape[1] or self.scores.size != self.labels.size:
            raise DataError(
                f"{shape[0]} videos and {shape[1]} categories but labels of shape "
                f"{self.labels.shape} and scores of shape {self.scores.shape}"
            )
        self.labels, self.scores = self.labels.reshape(shape), self.scores.reshape(shape)
        if len(set(self.categories)) != shape[1]:
            raise DataError(f"a category is named twice in {', '.join(self.categories)}")

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, category: str) -> int:
        """The column of `category`; a DataError naming the categories there are."""
        try:
            return self.categories.index(category)
        except ValueError:
            raise DataError(
                f"no scores for category {category!r} (no {category}{SCORE_SUFFIX} column); "
                f"the scores hold: {', '.join(self.categories)}"
            ) from None

    def column(self, category: str) -> np.ndarray:
        """Every row's score for `category`, labelled or not."""
        return self.scores[:, self.index(category)]

    def labelled(self, category: str) -> tuple[np.ndarray, np.ndarray]:
        """0/1 labels (int64) and scores of the rows labelled for `category`."""
        k = self.index(category)
        mask = ~np.isnan(self.labels[:, k])
        return self.labels[mask, k].astype(np.int64), self.scores[mask, k]

    @classmethod
    def read_csv(cls, path: str | Path) -> CategoryScores:
        """Read the CSV described in the module docstring; a DataError names file:line."""
        path = Path(path)
        text = read_user_text(path, encoding="utf-8-sig")
        reader = csv.reader(io.StringIO(text))
        header = [c.strip() for c in next(reader, [])]
        where = path.name
        id_column = next((c for c in ID_COLUMNS if c in (h.lower() for h in header)), None)
        if id_column is None:
            raise DataError(
                f"{where}: needs a {' or '.join(ID_COLUMNS)} column; found: "
                f"{', '.join(header) or 'nothing'}"
            )
        categories = [h[: -len(SCORE_SUFFIX)] for h in header if h.endswith(SCORE_SUFFIX)]
        categories = [c for c in categories if c]
        if not categories:
            raise DataError(
                f"{where}: no category: give each category C a score column C{SCORE_SUFFIX} "
                f"(and its label column C); found: {', '.join(header)}"
            )
        if len(set(categories)) != len(categories):
            raise DataError(f"{where}: a {SCORE_SUFFIX} column is given twice")
        at = {h: i for i, h in enumerate(header)}
        id_at = next(i for i, h in enumerate(header) if h.lower() == id_column)
        label_at = [at.get(c) for c in categories]
        score_at = [at[c + SCORE_SUFFIX] for c in categories]
        ids: list[str] = []
        labels: list[list[float]] = []
        scores: list[list[float]] = []
        seen: dict[str, int] = {}
        for line, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            row = row + [""] * (len(header) - len(row))
            video = row[id_at].strip()
            if not video:
                raise DataError(f"{where}:{line}: the {id_column} is empty")
            if video in seen:
                raise DataError(f"{where}:{line}: {video} is already on line {seen[video]}")
            seen[video] = line
            ids.append(video)
            labels.append([_label(where, line, c, row, i) for c, i in zip(categories, label_at)])
            scores.append([_score(where, line, c, row[i]) for c, i in zip(categories, score_at)])
        if not ids:
            raise DataError(f"{where}: no rows")
        return cls(categories, ids, np.array(labels), np.array(scores), id_column)

    def write_csv(self, path: str | Path) -> None:
        """Write the CSV `read_csv` reads, atomically (a temporary file renamed into place)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([self.id_column, *(h for c in self.categories for h in (c, c + "_score"))])
        for video, label_row, score_row in zip(self.ids, self.labels, self.scores):
            cells = [video]
            for label, score in zip(label_row, score_row):
                cells += ["" if math.isnan(label) else str(int(label)), repr(float(score))]
            writer.writerow(cells)
        _write_atomic(Path(path), out.getvalue())


def _label(where: str, line: int, category: str, row: list[str], i: int | None) -> float:
    if i is None:
        return math.nan
    cell = row[i].strip()
    if cell not in _LABELS:
        raise DataError(
            f"{where}:{line}: the {category} label must be 1, 0 or blank (not labelled), "
            f"got {cell!r}"
        )
    return _LABELS[cell]


def _score(where: str, line: int, category: str, cell: str) -> float:
    cell = cell.strip()
    try:
        value = float(cell)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise DataError(
            f"{where}:{line}: {category}{SCORE_SUFFIX} must be a number in [0, 1], got {cell!r}"
        )
    return value


def _write_atomic(path: Path, text: str) -> None:
    # The store's atomic writer sits above this layer; a rename in the same folder is the same
    # promise: a reader sees the old file or the whole new one.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".incomplete")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
