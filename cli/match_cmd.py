"""`harmcache match`: which known content (a hash bank) each video or image holds, and where
(harmcache/known/match.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from harmcache.errors import UsageError
from harmcache.known.match import MatchRule
from harmcache.paths import shown

from .common import handle_errors, print_json_line
from .options import option

MATCH_FAILED_EXIT = 1
"""Some inputs could not be hashed: the others were matched and reported."""


@handle_errors
def match_inputs(
    inputs: list[Path] = typer.Argument(
        None, help="Videos, images, folders or .txt/.csv lists of paths (as `extract` takes)."
    ),
    bank: Path = typer.Option(..., "--bank", help="Hash bank to match against."),
    cache: Path | None = typer.Option(
        None,
        "--cache",
        help="Read videos this cache's pdq family holds from it instead of decoding them; "
        "without INPUTS, match every video of the family.",
    ),
    family: str | None = typer.Option(
        None, "--family", help="The cache's pdq family, when it holds several."
    ),
    distance: int = option(MatchRule, "distance"),
    quality: int = option(MatchRule, "quality"),
    bank_share: float = option(MatchRule, "bank_share"),
    fps: float = typer.Option(
        1.0, "--fps", min=0.001, help="Frames hashed per second of a video that is decoded."
    ),
    json_out: bool = typer.Option(False, "--json", help="End with one JSON line."),
) -> None:
    """Match videos and images with a bank of known content: for each, the entries it holds
    (at least --bank-share of an entry's frames found), what share of it they cover, and the
    time spans where they are. Exit 1 if an input could not be hashed."""
    from harmcache.errors import VideoError
    from harmcache.known.bank import HashBank
    from harmcache.known.match import match_many
    from harmcache.known.pdq import hash_video
    from harmcache.known.sources import cached_hashes, pdq_family, video_ids_of
    from harmcache.store.cache import FeatureCache
    from harmcache.video.intake import expand_inputs

    rule = MatchRule(distance, quality, bank_share)
    if not inputs and cache is None:
        raise UsageError("nothing to match: give videos or images, or --cache CACHE")
    known = HashBank(bank)
    store = FeatureCache(cache) if cache is not None else None
    queries: list[dict] = []  # path, and hashes or error
    try:
        chosen = pdq_family(store, family) if store is not None else None
        if not inputs:
            for video in cached_hashes(store, chosen):
                queries.append({"path": video.source_path, "hashes": video.hashes})
        else:
            paths = expand_inputs(inputs)
            cached: dict[Path, str] = {}
            if store is not None:
                ids = video_ids_of(store, [p for p in paths if p.is_file()])
                held = store.holding(chosen, sorted(set(ids.values())))
                cached = {p: vid for p, vid in ids.items() if vid in held}
            wanted = sorted(set(cached.values()))
            read = cached_hashes(store, chosen, wanted) if wanted else []
            from_cache = {video.video_id: video.hashes for video in read}
            for path in paths:
                if path in cached:
                    queries.append({"path": str(path), "hashes": from_cache[cached[path]]})
                    continue
                try:
                    queries.append({"path": str(path), "hashes": hash_video(path, fps)})
                except VideoError as exc:
                    queries.append({"path": str(path), "error": exc.message})
    finally:
        if store is not None:
            store.close()
    hashed = [q for q in queries if "hashes" in q]
    found = match_many(
        [q["hashes"] for q in hashed],
        known,
        distance=rule.distance,
        quality=rule.quality,
        bank_share=rule.bank_share,
    )
    for query, matches in zip(hashed, found):
        query["matches"] = matches
    _report(queries)
    if json_out:
        print_json_line({"queries": [_as_json(q) for q in queries]})
    failed = [q for q in queries if "error" in q]
    if failed:
        typer.echo(f"error: {len(failed)} input(s) could not be hashed", err=True)
        raise typer.Exit(MATCH_FAILED_EXIT)


def _report(queries: list[dict]) -> None:
    matched = 0
    for query in queries:
        name = shown(query["path"])
        if "error" in query:
            typer.echo(f"error: cannot hash {name}: {shown(query['error'])}", err=True)
            continue
        matched += bool(query["matches"])
        for m in query["matches"]:
            spans = ", ".join(f"{a:.1f}-{b:.1f} s" for a, b in m.spans)
            typer.echo(
                f"{name}: {m.label or '(no label)'} [{m.entry_id[:12]}] "
                f"{m.bank_share:.0%} of it found, {m.query_share:.0%} of the input, at {spans}"
            )
    typer.echo(f"{matched} of {len(queries)} input(s) hold known content")


def _as_json(query: dict) -> dict:
    out = {"path": query["path"], "matches": [m.to_json() for m in query.get("matches", [])]}
    if "error" in query:
        out["error"] = query["error"]
    return out


def register(app: typer.Typer) -> None:
    app.command("match")(match_inputs)
