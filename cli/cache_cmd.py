"""`harmcache cache info | verify | gc | reindex | migrate | compact`: the commands of
harmcache/store/maintenance.py, and `cache info`."""

from __future__ import annotations

from pathlib import Path

import typer

from harmcache.errors import CacheError
from harmcache.paths import shown

from .common import handle_errors, print_json_line
from .duplicates_cmd import register as register_duplicates

cache_app = typer.Typer(help="Inspect, check and clean a feature cache.", no_args_is_help=True)


def _open(path: Path):
    from harmcache.store.cache import FeatureCache

    return FeatureCache(path)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@cache_app.command("info")
@handle_errors
def info(
    cache: Path = typer.Argument(..., help="Cache folder."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Families, videos per family, sizes and failures."""
    from harmcache.video.image import IMAGE_BACKEND

    with _open(cache) as store:
        report = store.info()
        for fam in report["families"]:
            if fam["extractor"] == "audio":
                fam["without_sound"] = store.videos_without_rows(fam["family"])
    if json_out:
        print_json_line(report)
        return
    typer.echo(f"cache {shown(report['root'])}: {report['videos']} video(s) seen")
    typer.echo(f"{'family':<28} {'videos':>7} {'shards':>7} {'size':>10}  weights")
    for fam in report["families"]:
        weights = "random-init" if fam["random_init"] else "real"
        typer.echo(
            f"{fam['family']:<28} {fam['videos']:>7} {fam['shards']:>7} "
            f"{_size(fam['bytes']):>10}  {weights}"
        )
        decoders = ", ".join(f"{name} {n}" for name, n in sorted(fam["backends"].items()))
        typer.echo(f"    decoded by: {decoders or '-'}")
        for made in fam["versions"]:
            libs = ", ".join(f"{k} {v}" for k, v in sorted(made["versions"].items()))
            typer.echo(f"    {made['videos']} video(s) made with: {libs or 'unrecorded versions'}")
        if len(fam["versions"]) > 1:
            typer.echo("    note: this family's videos were made under different library versions")
        by_decoder = _by_decoder(fam["backends"])
        images = by_decoder.get(IMAGE_BACKEND, 0)
        # A bare decoder name: cached before the display transform was recorded (images were
        # always turned upright by their EXIF orientation).
        unrecorded = sum(
            n for label, n in fam["backends"].items() if " " not in label and label != IMAGE_BACKEND
        )
        if unrecorded:
            typer.echo(
                f"    note: {unrecorded} video(s) were cached before display orientation was "
                "recorded: a rotated phone video among them was read as coded (sideways); "
                "extract it into a new cache to see it upright"
            )
        if images and fam["extractor"] == "slowfast":
            typer.echo(
                f"    note: {images} still image(s) have no SlowFast windows (no motion): zero "
                "rows, masked in stage two"
            )
        if fam.get("without_sound"):
            typer.echo(
                f"    note: {fam['without_sound']} video(s) have no audio track: zero rows, "
                "masked in stage two"
            )
    reasons = ", ".join(f"{k} {v}" for k, v in report["failure_reasons"].items())
    typer.echo(f"failures: {report['failures']}" + (f" ({reasons})" if reasons else ""))
    if not report["writable"]:
        typer.echo("read-only: reads work; extract, gc and reindex need a writable cache")


@cache_app.command("verify")
@handle_errors
def verify(
    cache: Path = typer.Argument(..., help="Cache folder."),
    sample: int = typer.Option(
        None,
        "--sample",
        min=1,
        help="Check only this many shards per family, drawn at random: a quick look at a huge "
        "cache (default: every shard, and the index against them all).",
    ),
) -> None:
    """Open every shard, check shapes, dtypes and finite values, and the index against them."""
    from harmcache.extractors.base import available_extractors, get_extractor
    from harmcache.store import maintenance
    from harmcache.store.atomic import leftovers as leftovers_of

    dims = {name: get_extractor(name).dim for name in available_extractors()}
    with _open(cache) as store:
        problems = maintenance.verify(store, dims, sample=sample)
        n_families = len(store.families())
        n_shards = sum(len(store.index.shard_sizes(f.name)) for f in store.families())
        leftovers = leftovers_of(store.root)
    if leftovers:
        typer.echo(
            f"note: {len(leftovers)} uncommitted temporary file(s) from interrupted "
            "writers; `harmcache cache gc` removes them"
        )
    for problem in problems:
        typer.echo(f"problem: {problem}", err=True)
    if problems:
        raise CacheError(f"{len(problems)} problem(s) in {cache}")
    if sample is not None and sample * n_families < n_shards:
        typer.echo(
            f"ok: {shown(str(cache))} ({n_families} families): the {sample} shard(s) per family "
            f"checked of {n_shards} are consistent; run without --sample to check them all"
        )
        return
    typer.echo(f"ok: {shown(str(cache))} ({n_families} families) is consistent")


@cache_app.command("gc")
@handle_errors
def gc(
    cache: Path = typer.Argument(..., help="Cache folder."),
    drop: list[str] = typer.Option([], "--drop", help="Also remove this family (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be removed."),
) -> None:
    """Remove families from older extractor versions, empty families and crash leftovers."""
    from harmcache.extractors.base import available_extractors, get_extractor
    from harmcache.store import maintenance

    versions = {name: get_extractor(name).version for name in available_extractors()}
    with _open(cache) as store:
        known = {f.name for f in store.families()}
        unknown = [d for d in drop if d not in known]
        if unknown:
            raise CacheError(f"no family {unknown[0]!r} in {cache}; see `harmcache cache info`")
        stale = maintenance.collect_garbage(store, versions, tuple(drop), dry_run=dry_run)
        for path in stale:
            typer.echo(f"{'would remove' if dry_run else 'removed'} {path.relative_to(cache)}")
    typer.echo(f"{len(stale)} item(s) {'to remove' if dry_run else 'removed'}")


@cache_app.command("reindex")
@handle_errors
def reindex(cache: Path = typer.Argument(..., help="Cache folder.")) -> None:
    """Rebuild index.sqlite from the shards and logs alone."""
    from harmcache.store import maintenance

    with _open(cache) as store:
        maintenance.reindex(store)
        n = sum(store.count(f) for f in store.families())
    typer.echo(f"reindexed {shown(str(cache))}: {n} family entries")


@cache_app.command("migrate")
@handle_errors
def migrate(
    cache: Path = typer.Argument(..., help="Cache folder."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list the shards to convert."),
) -> None:
    """Convert shards of an older layout to the current one, shard by shard (resumable)."""
    from harmcache.store import maintenance

    with _open(cache) as store:
        report = maintenance.migrate(store, dry_run=dry_run)
    for shard in report.migrated:
        typer.echo(f"{'would migrate' if dry_run else 'migrated'} {shard}")
    for shard in report.unreadable:
        typer.echo(f"skipped unreadable {shard} (see `harmcache cache verify`)", err=True)
    done = "to migrate" if dry_run else "migrated"
    typer.echo(f"{len(report.migrated)} shard(s) {done}, {report.current} already current")


@cache_app.command("compact")
@handle_errors
def compact(
    cache: Path = typer.Argument(..., help="Cache folder."),
    shard_videos: int = typer.Option(
        1024, "--shard-videos", help="Videos per shard to aim at when merging small ones."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be merged."),
) -> None:
    """Merge small shards (extraction commits a few videos at a time) into large ones, so
    stage two reads the cache in a few big reads. Safe to interrupt; run it while nothing
    reads the cache."""
    from harmcache.store import maintenance

    with _open(cache) as store:
        report = maintenance.compact(store, shard_videos=shard_videos, dry_run=dry_run)
    for shard in report.written:
        typer.echo(f"{'would write' if dry_run else 'wrote'} {shard}")
    done = "would merge" if dry_run else "merged"
    typer.echo(
        f"{done} {report.merged} shard(s) holding {report.videos} video(s) "
        f"into {len(report.written)}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")
    register_duplicates(cache_app)


def _by_decoder(labels: dict[str, int]) -> dict[str, int]:
    """Videos per decoder, whatever display transform its label adds (`pyav rotate_cw=90`)."""
    out: dict[str, int] = {}
    for label, n in labels.items():
        decoder = label.split(" ", 1)[0]
        out[decoder] = out.get(decoder, 0) + n
    return out
