"""Choosing shard families for a set of videos, loading their features, and refusing bad ones.

Provenance guards (see docs/stage-two.md#features): one fingerprint per extractor, and never
random-init features next to real ones. Content guards (see
docs/design-notes.md#refusing-degenerate-features): no constant, all-zero or non-finite features.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np

from harmcache.errors import CacheError, DataError, UsageError
from harmcache.heads.data import Modality, SequenceData, stage_two_duration
from harmcache.store.cache import FeatureCache
from harmcache.store.family import Family
from harmcache.train.holdings import Holdings
from harmcache.train.reading import ModalityScan, read_sides
from harmcache.types import VideoFeatures

log = logging.getLogger(__name__)

ASKED_FOR_ONLY = {"pdq"}
"""Families a head trains on only when named (`--features ...,pdq`, or a pinned --family): PDQ
hashes are for known-content matching, not features to learn harm from."""
SPARSE_EXTRACTORS = {"yolo"}
"""Extractors whose rows are legitimately all zero for some videos (no detections in any
frame); for these only a modality that is constant across every video is refused."""


def describe(family: Family) -> str:
    """'clip-0123abcd4567 (random-init seed 0)' or '... (weights ViT-B-32.pt 1a2b3c4d)'."""
    w = family.spec.get("weights", {})
    if family.random_init:
        return f"{family.name} (random-init seed {w.get('seed')})"
    if w.get("kind") == "file":
        return f"{family.name} (weights {w.get('name')} {str(w.get('sha256', ''))[:8]})"
    return family.name


def select_families(
    cache: FeatureCache,
    video_ids: list[str] | set[str],
    extractors: list[str] | None = None,
    family_names: list[str] | None = None,
    *,
    holdings: Holdings | None = None,
) -> dict[str, Family]:
    """extractor → the one family whose features these videos use.

    `extractors` defaults to every extractor with features for any of the videos, except
    those in `ASKED_FOR_ONLY`;
    `family_names` pins a family per extractor when several fingerprints cover the videos.
    `holdings`: where each family holds the videos, if already looked up (the join's)."""
    wanted = list(dict.fromkeys(video_ids))
    holdings = holdings or Holdings.lookup(cache, wanted)
    families = cache.families()
    pinned: dict[str, Family] = {}
    for name in family_names or []:
        match = [f for f in families if f.name == name]
        if not match:
            known = ", ".join(f.name for f in families) or "none"
            raise CacheError(f"no family {name!r} in {cache.root}; families: {known}")
        if match[0].extractor in pinned:
            raise UsageError(f"--family names two {match[0].extractor} families; pick one")
        pinned[match[0].extractor] = match[0]
    covering: dict[str, list[tuple[Family, int]]] = defaultdict(list)
    for family in families:
        held = holdings.held(family)
        n = sum(map(held.__contains__, wanted))
        if n:
            covering[family.extractor].append((family, n))
    if extractors is None:
        extractors = sorted((set(covering) - ASKED_FOR_ONLY) | set(pinned))
    chosen: dict[str, Family] = {}
    for extractor in sorted(set(extractors)):
        if extractor in pinned:
            chosen[extractor] = pinned[extractor]
            continue
        options = covering.get(extractor, [])
        if not options:
            raise DataError(f"the cache holds no {extractor} features for the labelled videos")
        if len(options) > 1:
            listed = "; ".join(f"{describe(f)}: {n} videos" for f, n in options)
            raise DataError(
                f"the labelled videos have {extractor} features from {len(options)} "
                f"fingerprints ({listed}); refusing to mix them. Pick one with --family NAME, "
                f"or re-extract so all videos share one {extractor} spec"
            )
        chosen[extractor] = options[0][0]
    if not chosen:
        raise DataError("no features selected: the cache holds no families for these videos")
    check_provenance(chosen)
    warn_version_drift(cache, chosen)
    return chosen


def warn_version_drift(cache: FeatureCache, families: dict[str, Family]) -> None:
    """Warn when one family's videos were made under different library versions: the numbers
    may have drifted between machines even though the fingerprint is the same."""
    for extractor, family in sorted(families.items()):
        made = [m["versions"] for m in cache.versions(family) if m["versions"]]
        if len(made) < 2:
            continue
        differing = sorted({k for m in made for k in m if len({x.get(k) for x in made}) > 1})
        shown = ", ".join(
            f"{k} {' / '.join(sorted({str(x.get(k)) for x in made}))}" for k in differing
        )
        log.warning(
            "%s features were made under %d different library version sets (%s); the same "
            "video may give slightly different numbers on each",
            extractor,
            len(made),
            shown,
        )


def check_provenance(families: dict[str, Family]) -> None:
    """Random-init features are for tests and demos; mixing them with real ones is a mistake."""
    # A family without weights (pdq hashes) is neither: it mixes with either kind.
    weighted = [f for f in families.values() if f.spec.get("weights", {}).get("kind") != "none"]
    fake = [f for f in weighted if f.random_init]
    real = [f for f in weighted if not f.random_init]
    if fake and real:
        raise DataError(
            "refusing to mix random-init features ("
            + ", ".join(describe(f) for f in fake)
            + ") with real-weight features ("
            + ", ".join(describe(f) for f in real)
            + "); re-extract them with the same weights source, or pick --features"
        )


def load_sequences(
    cache: FeatureCache,
    families: dict[str, Family],
    video_ids: list[str],
    labels: np.ndarray | None = None,
    *,
    holdings: Holdings | None = None,
) -> SequenceData:
    """Padded, masked sequences of `video_ids` from each family (in extractor-name order);
    `holdings` (where the families hold them, if already looked up) spares the index."""
    loaded = {}
    for ex, fam in sorted(families.items()):
        plan = holdings.plan(fam, video_ids) if holdings else cache.plan(fam, video_ids)
        loaded[ex] = {video.video_id: video for video in plan.videos(extras=False)}
    first = next(iter(loaded.values()))
    duration = np.array([_duration(first[v]) for v in video_ids], dtype=np.float64)
    modalities = {
        ex: _pad([videos[v] for v in video_ids], duration) for ex, videos in loaded.items()
    }
    return SequenceData(list(video_ids), modalities, labels, duration)


def _duration(video: VideoFeatures) -> float:
    ts = video.record.timestamp
    return float(stage_two_duration(video.info.duration, ts.max() if len(ts) else 0.0))


def _pad(videos: list[VideoFeatures], duration: np.ndarray) -> Modality:
    n = len(videos)
    length = max((len(v.record.features) for v in videos), default=0)
    dims = {v.record.features.shape[1] for v in videos if v.record.features.ndim == 2}
    if len(dims) > 1:
        raise CacheError(f"one family holds features of different widths: {sorted(dims)}")
    dim = dims.pop() if dims else 0
    values = np.zeros((n, length, dim), dtype=np.float32)
    mask = np.zeros((n, length), dtype=bool)
    stamp = np.zeros((n, length), dtype=np.float64)
    for i, v in enumerate(videos):
        rows = len(v.record.features)
        values[i, :rows] = v.record.features
        mask[i, :rows] = True
        stamp[i, :rows] = v.record.timestamp
    position = np.clip(stamp / np.maximum(duration, 1e-9)[:, None], 0.0, 1.0).astype(np.float32)
    return Modality(values, mask, stamp, np.where(mask, position, 0).astype(np.float32))


def scan_data(data: SequenceData) -> dict[str, ModalityScan]:
    out = {}
    for name, m in data.modalities.items():
        has = m.mask.any(axis=1)
        big, small, finite = _row_ranges(m)
        first = None
        if has.any():
            i = int(np.flatnonzero(has)[0])
            first = m.values[i, int(np.flatnonzero(m.mask[i])[0])]
        same = bool(has.sum() > 1 and _same_rows(m, has))
        out[name] = ModalityScan(m.dim, has, big, small, finite, same, first)
    return out


def scan_cache(
    cache: FeatureCache, families: dict[str, Family], video_ids: list[str]
) -> dict[str, ModalityScan]:
    """`scan_data` of `video_ids` computed one shard at a time (`reading.read_sides`): memory
    is one shard's rows, whatever the number of videos."""
    plans = {ex: cache.plan(fam, video_ids) for ex, fam in families.items()}
    return read_sides(plans, {"all": len(video_ids)}).scans["all"]


def constant_modalities(scans: dict[str, ModalityScan]) -> dict[str, str]:
    """Modalities whose rows are one and the same vector in every video → a description.

    Such a modality carries no information: e.g. random-init YOLO that detects nothing."""
    out = {}
    for name, scan in scans.items():
        if scan.same_rows:
            what = "all zero" if not scan.first_row.any() else "one constant vector"
            out[name] = f"identical for all {int(scan.has.sum())} videos ({what})"
    return out


def check_features(data: SequenceData, *, across_videos: bool = True, examples: int = 3) -> None:
    """`check_scans` of data held in memory."""
    check_scans(scan_data(data), data.video_ids, across_videos=across_videos, examples=examples)


def check_scans(
    scans: dict[str, ModalityScan],
    ids: list[str],
    *,
    across_videos: bool = True,
    examples: int = 3,
) -> None:
    """Refuse features no head should learn from (all-zero inputs once trained a model to F1 0; see
    docs/design-notes.md#refusing-degenerate-features).

    Refused: non-finite values; a modality identical for every video (unless `across_videos`
    is False: a few evaluation videos may share one, e.g. no YOLO detections); a video whose
    rows in a dense modality are all one value (all zero, typically a broken extraction); a
    video with no usable row in any modality."""
    usable = np.zeros(len(ids), dtype=bool)
    for name, scan in scans.items():
        has, big, small, finite = scan.has, scan.big, scan.small, scan.finite
        if not finite.all():
            raise DataError(
                f"{name} features hold NaN or inf for {int((~finite).sum())} videos: "
                f"{_name(ids, ~finite, examples)}; run `harmcache cache verify`"
            )
        if across_videos and scan.same_rows:
            raise DataError(
                f"{name} features are identical for all {int(has.sum())} videos; the "
                f"extraction is broken: re-extract, or leave {name} out with --features"
            )
        constant = has & (big == small)
        if constant.any() and name not in SPARSE_EXTRACTORS:
            what = "all-zero" if np.all(big[constant] == 0) else "constant"
            raise DataError(
                f"{name} features are {what} for {int(constant.sum())} of {len(ids)} videos: "
                f"{_name(ids, constant, examples)}; re-extract them, or leave {name} out "
                "with --features"
            )
        usable |= has & ~constant
    if not usable.all():
        raise DataError(
            f"{int((~usable).sum())} videos have no usable features in any modality "
            f"(no rows, or constant rows): {_name(ids, ~usable, examples)}"
        )


def _row_ranges(m: Modality, chunk: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per video: largest and smallest real value, and whether all values are finite."""
    big, small, finite = [], [], []
    for i in range(0, len(m.mask), chunk):
        v, k = m.values[i : i + chunk], m.mask[i : i + chunk, :, None]
        big.append(np.where(k, v, -np.inf).max(axis=(1, 2), initial=-np.inf))
        small.append(np.where(k, v, np.inf).min(axis=(1, 2), initial=np.inf))
        finite.append(np.isfinite(v).all(axis=(1, 2)))
    if not big:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool)
    return np.concatenate(big), np.concatenate(small), np.concatenate(finite)


def _same_rows(m: Modality, has: np.ndarray, chunk: int = 256) -> bool:
    """Every real row of every video equals the first real row."""
    first = int(np.flatnonzero(has)[0])
    reference = m.values[first, int(np.flatnonzero(m.mask[first])[0])]
    for i in range(0, len(m.mask), chunk):
        same = (m.values[i : i + chunk] == reference).all(axis=2) | ~m.mask[i : i + chunk]
        if not same.all():
            return False
    return True


def _name(ids: list[str], which: np.ndarray, examples: int) -> str:
    picked = [ids[i] for i in np.flatnonzero(which)]
    shown = ", ".join(v[:12] for v in picked[:examples])
    return shown + (f" and {len(picked) - examples} more" if len(picked) > examples else "")
