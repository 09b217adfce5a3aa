"""`harmcache bank add | info | export`: banks of known content's frame hashes
(harmcache/known/bank.py), filled from media, hash files and a cache's pdq family."""

from __future__ import annotations

from pathlib import Path

import typer

from harmcache.errors import UsageError
from harmcache.known.bank import SEGMENT_FRAMES, SEGMENT_SECONDS
from harmcache.paths import shown

from .common import handle_errors, print_json_line

bank_app = typer.Typer(
    help="Banks of known content's PDQ frame hashes: add to one, inspect it, export it.",
    no_args_is_help=True,
)

ADD_FAILED_EXIT = 1
"""`bank add` when some media could not be hashed (the rest is committed)."""


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@bank_app.command("add")
@handle_errors
def add(
    bank: Path = typer.Argument(..., help="Bank folder (made if it does not exist)."),
    sources: list[Path] = typer.Argument(
        None,
        help="Videos, images, hash files (vPDQ .txt, PDQ hex lists, hash,label .csv) or "
        "folders of them.",
    ),
    label: str | None = typer.Option(
        None,
        "--label",
        help="Label of the entries added (default: a csv row's own label, else the file name).",
    ),
    from_cache: Path | None = typer.Option(
        None,
        "--from-cache",
        help="Also add every video of this cache's pdq family, read from the cache (no decoding).",
    ),
    family: str | None = typer.Option(
        None, "--family", help="The cache's pdq family, when it holds several."
    ),
    fps: float | None = typer.Option(
        None,
        "--fps",
        min=0.001,
        help="Hash a video at this many frames a second, as vPDQ does (default: every frame "
        "where the picture moved, with mirrors and centre crops, so that edited copies match).",
    ),
    segment_frames: int = typer.Option(
        SEGMENT_FRAMES,
        "--segment-frames",
        min=1,
        help="Frames per committed segment: a crash loses at most those not yet committed (and "
        f"at most {SEGMENT_SECONDS:g} seconds of work).",
    ),
    json_out: bool = typer.Option(False, "--json", help="End with one JSON line."),
) -> None:
    """Add known content to a bank. Hash files are all read before anything is added (a
    malformed line stops the command, exit 2); content already in the bank is skipped; media
    that cannot be decoded are reported and the rest committed (exit 1)."""
    from harmcache.errors import VideoError
    from harmcache.hashing import sha256_file
    from harmcache.known.bank import HashBank
    from harmcache.known.sources import (
        cached_hashes,
        expand_sources,
        hash_file_entries,
        is_hash_file,
        media_entry,
        pdq_family,
    )
    from harmcache.store.cache import FeatureCache

    if not sources and from_cache is None:
        raise UsageError("nothing to add: give videos, images, hash files or --from-cache CACHE")
    paths = expand_sources(sources or [])
    from_files = hash_file_entries([p for p in paths if is_hash_file(p)], label=label)
    media = [p for p in paths if not is_hash_file(p)]
    store = FeatureCache(from_cache) if from_cache is not None else None
    failed: list[dict] = []
    try:
        chosen = pdq_family(store, family) if store is not None else None
        target = HashBank(bank, create=True)
        with target.writer(max_frames=segment_frames) as writer:
            for entry in from_files:
                writer.add(entry)
            if store is not None:
                for video in cached_hashes(store, chosen):
                    writer.add(video.entry(label, f"cache {store.root}: {video.source_path}"))
            for path in media:
                try:
                    entry_id = sha256_file(path)
                    if writer.skips(entry_id):
                        continue
                    writer.add(media_entry(path, label=label, fps=fps, entry_id=entry_id))
                except VideoError as exc:
                    failed.append({"path": str(path), "reason": exc.reason, "message": exc.message})
                    typer.echo(f"error: cannot hash {shown(str(path))}: {exc.message}", err=True)
                except OSError as exc:
                    failed.append({"path": str(path), "reason": "unreadable", "message": str(exc)})
                    typer.echo(f"error: cannot read {shown(str(path))}: {exc.strerror}", err=True)
    finally:
        if store is not None:
            store.close()
    report = {
        "bank": str(bank),
        "added": writer.added,
        "skipped": writer.skipped,
        "failed": failed,
        "entries": len(target),
        "frames": target.table.frames,
    }
    typer.echo(
        f"added {writer.added} entr{'y' if writer.added == 1 else 'ies'} to {shown(str(bank))}"
        f" ({writer.skipped} already there); the bank holds {len(target)} entries, "
        f"{target.table.frames} frames"
    )
    if json_out:
        print_json_line(report)
    if failed:
        typer.echo(f"error: {len(failed)} file(s) could not be hashed", err=True)
        raise typer.Exit(ADD_FAILED_EXIT)


@bank_app.command("info")
@handle_errors
def info(
    bank: Path = typer.Argument(..., help="Bank folder."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Entries, frames, labels and size of a bank."""
    from harmcache.known.bank import HashBank

    report = HashBank(bank).info()
    if json_out:
        print_json_line(report)
        return
    typer.echo(
        f"bank {shown(report['root'])}: {report['entries']} entries, {report['frames']} frames, "
        f"{report['segments']} segment(s), {_size(report['bytes'])}"
    )
    for name, n in report["labels"].items():
        typer.echo(f"    {name or '(no label)'}: {n}")
    if report["damaged_segments"]:
        typer.echo(
            f"note: {len(report['damaged_segments'])} damaged segment(s) were skipped: "
            + ", ".join(report["damaged_segments"])
        )
    if report["leftover_temporary_files"]:
        typer.echo(
            f"note: {report['leftover_temporary_files']} uncommitted temporary segment(s) "
            "from interrupted writers (never read; safe to delete)"
        )


@bank_app.command("export")
@handle_errors
def export(
    bank: Path = typer.Argument(..., help="Bank folder."),
    out: Path = typer.Argument(
        ..., help="Output: a folder for vpdq (one file per entry), a file for hex and csv."
    ),
    fmt: str = typer.Option(..., "--format", help="vpdq | hex | csv"),
) -> None:
    """Write a bank's hashes in a format other tools read."""
    from harmcache.known.bank import HashBank
    from harmcache.known.formats import FORMATS, export

    if fmt not in FORMATS:
        raise UsageError(f"--format is one of {' | '.join(FORMATS)}, got {fmt!r}")
    if fmt != "vpdq" and out.is_dir():
        raise UsageError(f"{out} is a folder: --format {fmt} writes one file")
    if fmt == "vpdq" and out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file: --format vpdq writes a folder of files")
    source = HashBank(bank)
    written = export(source.table, fmt, out)
    typer.echo(
        f"wrote {len(source)} entries ({source.table.frames} frames) as {fmt} "
        f"into {len(written)} file(s) at {shown(str(out))}"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(bank_app, name="bank")
