"""Label and event keys → cached videos: by a path the cache recorded, or by video id.

A key matches, in this order:

1. exactly: the key as written, or made absolute against the labels file's folder or the
   working directory (as `abspath` makes it: `.` and `..` folded), is a recorded path. One
   question to the index per form (`sources_of`), for the keys the forms before it left;
2. by video id (a SHA-256, any case), when some family holds it;
3. by a normalised form: absolute, `..` and `~` resolved, symlinks resolved on either side, or
   a name that is not UTF-8 written in its readable form (`caf\\xe9.mp4`). This needs every
   recorded path normalised (a `realpath` each), so it is built only when some key is left
   after 1 and 2, and only then.

A key whose path is recorded but whose video no family holds names no cached video.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harmcache.paths import is_utf8, shown
from harmcache.store.cache import FeatureCache
from harmcache.train.holdings import Holdings

if TYPE_CHECKING:
    from harmcache.train.labels import LabelRow

SHA256 = re.compile(r"^[0-9a-f]{64}$")

Match = tuple[str, str | None]
"""(video id, the cache's path for it; None when the key named the video by id)"""


@dataclass
class Matches:
    """Each row's match (None: it names no cached video), and where each family holds the
    matched videos (looked up once per family, for the join and every later step)."""

    found: list[Match | None]
    holdings: Holdings


def match_rows(rows: list[LabelRow], cache: FeatureCache) -> Matches:
    """Each row's cached video (see the module docstring for the order of the rules)."""
    cwd = str(Path.cwd())
    found: list[Match | None] = [None] * len(rows)
    paths: list[str | None] = [None] * len(rows)
    # Each form of the keys is asked once, and only for the keys the forms before it left:
    # the key as written (the paths `extract` was given), against the labels file's folder,
    # then against the working directory. One question each, however many rows.
    for form in (_as_written, _under_base, _under_cwd):
        ask = {i: p for i, row in enumerate(rows) if paths[i] is None and (p := form(row, cwd))}
        recorded = cache.index.sources_of(list(set(ask.values()))) if ask else {}
        for i, path in ask.items():
            if path in recorded:
                paths[i] = path
                found[i] = (recorded[path], path)
        del ask, recorded
    by_id, left = [], []
    for i, row in enumerate(rows):
        if found[i] is not None:
            continue
        if SHA256.match(row.key.lower()):
            found[i] = (row.key.lower(), None)
            by_id.append(i)
        else:
            left.append(i)
    del paths
    holdings = Holdings.lookup(cache, (m[0] for m in found if m is not None))
    left += [i for i in by_id if not holdings.anywhere(found[i][0])]  # type: ignore[index]
    _drop_uncached(found, holdings)
    if left:
        _match_normalised(rows, left, found, cache, holdings, cwd)
    return Matches(found, holdings)


def _drop_uncached(found: list[Match | None], holdings: Holdings) -> None:
    for i, match in enumerate(found):
        if match is not None and not holdings.anywhere(match[0]):
            found[i] = None


def _match_normalised(
    rows: list[LabelRow],
    left: list[int],
    found: list[Match | None],
    cache: FeatureCache,
    holdings: Holdings,
    cwd: str,
) -> None:
    """Rule 3 for the rows `left`, then the families asked about the videos it found."""
    index = NormalisedPaths(cache.sources())
    for i in left:
        path = index.find(rows[i], cwd)
        found[i] = None if path is None else (index.sources[path], path)
    holdings.add(found[i][0] for i in left if found[i] is not None)  # type: ignore[index]
    _drop_uncached(found, holdings)


def _as_written(row: LabelRow, cwd: str) -> str | None:
    return row.key if os.path.isabs(row.key) else None  # every recorded path is absolute


def _under_base(row: LabelRow, cwd: str) -> str | None:
    key = os.path.expanduser(row.key)
    return key if os.path.isabs(key) else os.path.normpath(os.path.join(str(row.base), key))


def _under_cwd(row: LabelRow, cwd: str) -> str | None:
    key = os.path.expanduser(row.key)
    return None if os.path.isabs(key) else os.path.normpath(os.path.join(cwd, key))


def candidates(row: LabelRow, cwd: str | None = None) -> list[str]:
    """The key as an absolute path: as written (with `~` expanded) when it is absolute, else
    against the labels file's folder, then against the working directory."""
    key = os.path.expanduser(row.key)
    if os.path.isabs(key):
        return [key]
    return [
        os.path.normpath(os.path.join(str(row.base), key)),
        os.path.normpath(os.path.join(cwd or os.getcwd(), key)),
    ]


def norm(path: str | Path) -> str:
    return os.path.normcase(os.path.normpath(os.path.abspath(os.path.expanduser(str(path)))))


class NormalisedPaths:
    """Every recorded path by its normalised forms (as recorded, and with symlinks resolved);
    a name that is not UTF-8 is also known by its readable form (`caf\\xe9.mp4`, how a UTF-8
    labels file can write it), after every real name so that a real name always wins."""

    def __init__(self, sources: dict[str, str]):
        self.sources = sources
        """path → video id, every path the cache recorded"""
        self.by_form: dict[str, str] = {}
        for path in sorted(sources):
            self.by_form.setdefault(norm(path), path)
            self.by_form.setdefault(norm(os.path.realpath(path)), path)
        for path in sorted(p for p in sources if not is_utf8(p)):
            self.by_form.setdefault(norm(shown(path)), path)

    def find(self, row: LabelRow, cwd: str | None = None) -> str | None:
        """The recorded path a row's key names in some normalised form, if any."""
        path = None
        for candidate in candidates(row, cwd):
            forms = [norm(candidate), norm(os.path.realpath(candidate))]
            if not is_utf8(candidate):  # a folder whose name is not UTF-8, the key written readably
                forms.append(norm(shown(candidate)))
            for form in forms:
                path = path or self.by_form.get(form)
        return path


def no_match_message(rows: list[LabelRow], cache: FeatureCache) -> str:
    """Why 0 labels matched: an example key from each side. The cache's side is streamed from
    the index (its smallest path and id), never loaded whole."""
    first = rows[0]
    label_side = f"{first.key!r}"
    if not SHA256.match(first.key.lower()):
        label_side += f" (resolved: {norm(candidates(first)[0])!r})"
    index = cache.index
    some_path = min((p for p, _ in index.iter_sources()), default=None)
    some_id = min(
        (v for f in cache.families() for v, _ in index.iter_entries(f.name)), default=None
    )
    if some_path is not None:
        some_id = some_id or min(v for _, v in index.iter_sources())
        cache_side = f"paths like {some_path!r} or ids like {some_id!r}"
    elif some_id is not None:
        cache_side = f"ids like {some_id!r} and no recorded paths"
    else:
        cache_side = "nothing: the cache holds no videos"
    return (
        f"0 of {len(rows)} labels matched a cached video. Label keys look like {label_side}; "
        f"the cache has {cache_side}. Label each video by the path given to `harmcache extract` "
        "(absolute, or relative to the labels file) or by its video id"
    )
