"""The run directory: what `train` writes, and how every later command reads it back.

    RUN/config.json        the resolved configuration (head settings included)
    RUN/split.csv          video_id,path,label,split (train | val | test), one row per labelled
                           path; it and config.json's "split" are `harmcache.train.split.Split`
    RUN/features.json      per extractor: family, fingerprint, random_init, dim and the full spec
    RUN/head/              head.json (kind, settings, learned facts) + the head's weights
    RUN/categories.json    the categories the head scores, in order, and their taxonomy
    RUN/val_category_scores.csv
                           path,video_id, then per category its label (blank: not labelled)
                           and its score: one row per validation video; the input of
                           `sweep-threshold --policy`
    RUN/test_category_scores.csv
                           the same for the test split
    RUN/val_scores.csv     video_id,path,label,score: one row per validation video
    RUN/test_scores.csv    the same for the test split (never used to choose anything)
    RUN/calibration.json   the score → probability map fitted on the validation scores
    RUN/metrics.json       test metrics, then validation ("tuned on") metrics, counts, history
    RUN/threshold.json     the operating point: the threshold and how it was chosen
                           (`harmcache.decisions.operating_point`)
    RUN/threshold.png      written by `sweep-threshold`
    RUN/reliability.png    written by `evaluate`

A run with several categories keeps the files from val_scores.csv to threshold.png once per
category, in RUN/categories/<name>/ (`category_dir`): each category has its own threshold and
calibrator, tuned on the videos labelled in it. A one-category run keeps them at the top.

Nothing here opens a video: every later command needs only the run directory and the cache.
The directory is written as RUN.incomplete and renamed when complete.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harmcache.calibration import ScoreCalibrator
from harmcache.decisions.category_scores import CategoryScores
from harmcache.decisions.operating_point import OperatingPoint
from harmcache.decisions.sweep import SweepResult
from harmcache.errors import CacheError, UsageError
from harmcache.heads.base import Head, load_head
from harmcache.heads.data import SequenceData
from harmcache.paths import shown
from harmcache.store.atomic import write_text_atomic
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.train.categories import HARMFUL
from harmcache.train.features import check_features, check_scans, load_sequences
from harmcache.train.holdings import Holdings
from harmcache.train.labels import LabeledVideo
from harmcache.train.reading import SCORE_CHUNK, read_pooled
from harmcache.train.split import SPLIT_FILE, read_split

CONFIG_FILE = "config.json"
FEATURES_FILE = "features.json"
HEAD_DIR = "head"
VAL_SCORES_FILE = "val_scores.csv"
TEST_SCORES_FILE = "test_scores.csv"
CALIBRATION_FILE = "calibration.json"
RELIABILITY_FILE = "reliability.png"
METRICS_FILE = "metrics.json"
THRESHOLD_FILE = "threshold.json"
PLOT_FILE = "threshold.png"
CATEGORIES_FILE = "categories.json"
CATEGORIES_DIR = "categories"
TEST_CATEGORY_SCORES_FILE = "test_category_scores.csv"


def category_dir(run: Path, name: str, n_categories: int) -> Path:
    """Where category `name`'s threshold, calibrator and scores live: the run itself when it
    has one category, else RUN/categories/<name>/."""
    return run if n_categories == 1 else run / CATEGORIES_DIR / name


def categories_json(categories: list[str], taxonomy) -> dict:
    return {
        "categories": list(categories),
        "taxonomy": None if taxonomy is None else taxonomy.to_json(),
    }


def read_categories(run: Path) -> list[str]:
    """The run's categories, in the head's order (a run from before categories: `harmful`)."""
    path = run / CATEGORIES_FILE
    if not path.exists():
        return [HARMFUL]
    return list(read_json(path)["categories"])


# --- writing ---------------------------------------------------------------------------------
def check_out(out: Path, force: bool) -> None:
    """Refuse an `out` under a file, and a non-empty `out` unless `force`."""
    blocker = next((p for p in [out, *out.parents] if p.exists() and not p.is_dir()), None)
    if blocker is not None and blocker != out:
        raise UsageError(f"--out {out} is not a folder: {blocker} is a file")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise UsageError(
            f"{out} already exists; choose another --out or pass --force to replace it"
        )


@contextmanager
def incomplete(out: Path) -> Iterator[Path]:
    """Write into OUT.incomplete; replace OUT with it only when everything is written."""
    tmp = out.with_name(out.name + ".incomplete")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    yield tmp
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


def plain(obj: Any) -> Any:
    """JSON-safe: NaN and inf become null (AUROC is undefined on one class), arrays lists."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def write_json(path: Path, obj: Any) -> None:
    """`obj` made `plain`, as sorted, indented JSON, written atomically."""
    write_text_atomic(path, json.dumps(plain(obj), indent=2, sort_keys=True) + "\n")


def features_json(families: dict[str, Family], dims: dict[str, int]) -> dict:
    """Enough to find (or re-extract) the same features: each family's full spec."""
    return {
        ex: {
            "family": fam.name,
            "fingerprint": fam.fingerprint,
            "random_init": fam.random_init,
            "dim": int(dims.get(ex, 0)),
            "spec": fam.spec,
        }
        for ex, fam in sorted(families.items())
    }


def threshold_json(result: SweepResult, plot: str | None = None) -> dict:
    """threshold.json: the sweep's choice, where its scores came from, and its plot if drawn."""
    return OperatingPoint.record(result, VAL_SCORES_FILE, plot)


def write_val_scores(
    path: Path, videos: list[LabeledVideo], scores: np.ndarray, labels: np.ndarray | None = None
) -> None:
    """val_scores.csv (or test_scores.csv): video_id,path,label,score, one row per video (a
    path in its readable form: the file is UTF-8 text). `labels`: the category's labels of
    `videos` (default: each video's one bit)."""
    labels = [v.label for v in videos] if labels is None else labels
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["video_id", "path", "label", "score"])
        for v, y, s in zip(videos, labels, scores):
            writer.writerow([v.video_id, shown(v.paths[0]), int(y), repr(float(s))])


def write_category_scores(
    path: Path,
    videos: list[LabeledVideo],
    categories: list[str],
    targets: np.ndarray,
    scores: np.ndarray,
) -> None:
    """val_category_scores.csv (`CategoryScores`' format): path, then <category> (blank: not
    labelled) and <category>_score for each category."""
    paths = [shown(v.paths[0]) for v in videos]
    CategoryScores(list(categories), paths, targets, scores).write_csv(path)


# --- reading ---------------------------------------------------------------------------------
def read_val_scores(path: Path) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """(video ids, paths, labels, scores) from a val_scores.csv."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        return (
            [r["video_id"] for r in rows],
            [r["path"] for r in rows],
            np.array([int(r["label"]) for r in rows], dtype=np.int64),
            np.array([float(r["score"]) for r in rows], dtype=np.float64),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise UsageError(
            f"{path} is damaged ({type(exc).__name__}: {exc}); retrain the run"
        ) from None


@dataclass
class CategoryRule:
    """One category of a run: the folder of its files, its threshold and its calibrator."""

    name: str
    path: Path
    threshold: dict
    calibrator: ScoreCalibrator | None = None

    def probability(self, scores: np.ndarray) -> np.ndarray | None:
        """Calibrated probabilities for raw scores, or None without a calibrator."""
        return None if self.calibrator is None else self.calibrator.transform(scores)

    @property
    def cut(self) -> float:
        return float(self.threshold["threshold"])


@dataclass
class Run:
    """A run directory, loaded: its head scores cached features the way training did."""

    path: Path
    config: dict
    features: dict
    head: Head
    threshold: dict
    """The operating point of a one-category run (of the first category otherwise: see
    `rules`)."""
    calibrator: ScoreCalibrator | None = None
    """Raw score → probability, fitted on the validation scores; None if trained without."""
    rules: list[CategoryRule] = field(default_factory=list)
    """Every category's threshold and calibrator, in the head's order."""

    @property
    def categories(self) -> list[str]:
        return [r.name for r in self.rules]

    def rule(self, name: str) -> CategoryRule:
        """Category `name`'s threshold and calibrator; a UsageError names the run's categories."""
        for r in self.rules:
            if r.name == name:
                return r
        raise UsageError(
            f"{self.path} has no category {name!r}; its categories: {', '.join(self.categories)}"
        )

    @property
    def families(self) -> dict[str, Family]:
        """extractor → the shard family this run's features come from."""
        return {
            ex: Family(ex, f["fingerprint"], f["spec"]) for ex, f in sorted(self.features.items())
        }

    def split(self) -> list[dict]:
        """The rows of split.csv (label as int)."""
        return read_split(self.path / SPLIT_FILE)

    def val_scores(self) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
        """(video ids, paths, labels, scores) as written at training time."""
        return read_val_scores(self.path / VAL_SCORES_FILE)

    def test_scores(self) -> tuple[list[str], list[str], np.ndarray, np.ndarray] | None:
        """(video ids, paths, labels, scores) of the test split as scored at training time, or
        None when the run has no test split (or predates test_scores.csv)."""
        path = self.path / TEST_SCORES_FILE
        return read_val_scores(path) if path.exists() else None

    def probability(self, scores: np.ndarray) -> np.ndarray | None:
        """Calibrated probabilities for raw scores, or None when the run has no calibrator."""
        return None if self.calibrator is None else self.calibrator.transform(scores)

    def open_cache(self, cache_dir: str | Path | None = None) -> FeatureCache:
        """`cache_dir`, or the cache the run was trained from."""
        return FeatureCache(cache_dir or self.config["cache"])

    def missing(
        self, cache: FeatureCache, video_ids: list[str], holdings: Holdings | None = None
    ) -> dict[str, list[str]]:
        """extractor → the videos lacking this run's features in `cache`."""
        holdings = holdings or self.holdings(cache, video_ids)
        out = {}
        for ex, fam in self.families.items():
            have = holdings.held(fam)
            lacking = [v for v in video_ids if v not in have]
            if lacking:
                out[ex] = lacking
        return out

    def holdings(self, cache: FeatureCache, video_ids: list[str]) -> Holdings:
        """Where the run's families hold `video_ids` in `cache`: one index question each."""
        return Holdings.lookup(cache, video_ids, [f.name for f in self.families.values()])

    def _require(self, cache: FeatureCache, video_ids: list[str]) -> Holdings:
        holdings = self.holdings(cache, video_ids)
        missing = self.missing(cache, video_ids, holdings)
        if missing:
            ex, lacking = next(iter(missing.items()))
            fam = self.families[ex]
            raise CacheError(
                f"{len(lacking)} video(s) have no {ex} features with this run's fingerprint "
                f"(family {fam.name}) in {cache.root}, e.g. {lacking[0][:12]}; extract them with "
                "the run's specs (`harmcache predict` does) or point --cache at the run's cache"
            )
        return holdings

    def load_data(
        self, cache: FeatureCache, video_ids: list[str], labels: np.ndarray | None = None
    ) -> SequenceData:
        """The run's features of `video_ids`; a CacheError names what is missing."""
        holdings = self._require(cache, video_ids)
        return load_sequences(cache, self.families, video_ids, labels, holdings=holdings)

    def score(self, data: SequenceData) -> np.ndarray:
        """(N,) probability of harmful for each video."""
        return self.head.predict_proba(data)[:, 1]

    def score_categories(self, data: SequenceData) -> np.ndarray:
        """(N, categories): the head's score of each category for each video."""
        return self.head.predict_categories(data)

    def score_cache(
        self, cache: FeatureCache, video_ids: list[str], *, check: bool = False
    ) -> np.ndarray:
        """(N,) probability of harmful for cached videos (`category_scores_cache` of a
        one-category run)."""
        return self.category_scores_cache(cache, video_ids, check=check)[:, 0]

    def category_scores_cache(
        self, cache: FeatureCache, video_ids: list[str], *, check: bool = False
    ) -> np.ndarray:
        """(N, categories) scores of cached videos, read shard by shard: a pooled head
        pools each shard once (never the sequences), a sequence head reads `SCORE_CHUNK`
        videos at a time. `check`: the content guards first (`check_scans`, per video)."""
        holdings = self._require(cache, video_ids)
        stats = self.head.pooled_stats
        if stats is not None:
            plans = {ex: holdings.plan(fam, video_ids) for ex, fam in self.families.items()}
            data, scans = read_pooled(plans, stats)
            if check:
                check_scans(scans, video_ids, across_videos=False)
            return self.score_categories(data)
        parts = []
        for start in range(0, len(video_ids), SCORE_CHUNK):
            ids = video_ids[start : start + SCORE_CHUNK]
            data = load_sequences(cache, self.families, ids, holdings=holdings)
            if check:
                check_features(data, across_videos=False)
            parts.append(self.score_categories(data))
        return np.concatenate(parts) if parts else np.zeros((0, len(self.rules) or 1))


def read_json(path: Path) -> Any:
    """A run file's JSON, or a one-line UsageError naming the damaged file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is damaged ({exc}); retrain the run") from None


def load_run(run_dir: str | Path) -> Run:
    """Load a run directory written by `train`; its head predicts at the run's threshold."""
    path = Path(run_dir)
    for name in (CONFIG_FILE, FEATURES_FILE):
        if not (path / name).exists():
            raise UsageError(f"{path} is not a run directory: {name} is missing")
    config = read_json(path / CONFIG_FILE)
    features = read_json(path / FEATURES_FILE)
    names = read_categories(path)
    rules = [_read_rule(path, name, len(names)) for name in names]
    head = load_head(path / HEAD_DIR)
    if len(rules) == 1:
        # The run's threshold.json is the one source of truth: a sweep rewrites only it.
        head.threshold_ = rules[0].cut
    first = rules[0]
    return Run(path, config, features, head, first.threshold, first.calibrator, rules)


def _read_rule(run: Path, name: str, n_categories: int) -> CategoryRule:
    where = category_dir(run, name, n_categories)
    for file in (THRESHOLD_FILE, VAL_SCORES_FILE):
        if not (where / file).exists():
            raise UsageError(f"{run} is not a run directory: {where / file} is missing")
    calibrator = None
    if (where / CALIBRATION_FILE).exists():
        calibrator = ScoreCalibrator.from_json(read_json(where / CALIBRATION_FILE))
    return CategoryRule(name, where, read_json(where / THRESHOLD_FILE), calibrator)
