"""`harmcache cache duplicates`: the cache's near-duplicate videos, by the pdq family's frame
hashes and the known-content matching rule (harmcache/known/match.py)."""

from __future__ import annotations

from pathlib import Path

import typer

from harmcache.known.match import MatchRule
from harmcache.paths import shown

from .common import handle_errors, print_json_line
from .options import option


@handle_errors
def duplicates(
    cache: Path = typer.Argument(..., help="Cache folder (with a pdq family)."),
    family: str | None = typer.Option(
        None, "--family", help="The cache's pdq family, when it holds several."
    ),
    distance: int = option(MatchRule, "distance"),
    quality: int = option(MatchRule, "quality"),
    share: float = option(
        MatchRule,
        "bank_share",
        "--share",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Groups of near-duplicate videos: two are in one group when either matches the other
    (--share of its frames found in the other), and groups join through shared members."""
    from harmcache.known.match import near_duplicate_clusters
    from harmcache.store.cache import FeatureCache

    with FeatureCache(cache) as store:
        clusters = near_duplicate_clusters(
            store, distance=distance, quality=quality, share=share, family=family
        )
        members = {vid for cluster in clusters for vid in cluster}
        paths: dict[str, list[str]] = {vid: [] for vid in members}
        for path, vid in store.index.iter_sources():
            if vid in paths:
                paths[vid].append(path)
    report = {
        "clusters": [
            [{"video_id": vid, "paths": sorted(paths[vid])} for vid in cluster]
            for cluster in clusters
        ]
    }
    if json_out:
        print_json_line(report)
        return
    for n, cluster in enumerate(report["clusters"], start=1):
        typer.echo(f"cluster {n}: {len(cluster)} videos")
        for video in cluster:
            where = ", ".join(shown(p) for p in video["paths"]) or "(no recorded path)"
            typer.echo(f"    {video['video_id'][:12]}  {where}")
    typer.echo(f"{len(clusters)} cluster(s) of near-duplicate videos")


def register(cache_app: typer.Typer) -> None:
    cache_app.command("duplicates")(duplicates)
