"""`harmcache extract`: stage one."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import typer

from harmcache.extract.config import ExtractConfig
from harmcache.extract.progress import Progress
from harmcache.extract.summary import InputResult
from harmcache.paths import shown

from .common import handle_errors, print_json_line, setup_logging
from .options import option


class BarProgress(Progress):
    """tqdm bar on a terminal: files hashed while planning, then videos/s, ETA and failures."""

    plan_bar = None

    def hashing(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.plan_bar is None and total:
            self.plan_bar = tqdm(total=total, unit="file", desc="identify", file=sys.stderr)
        if self.plan_bar is not None:
            self.plan_bar.n = done
            self.plan_bar.refresh()
            if done == total:
                self.plan_bar.close()

    def start(self, total: int, cached: int) -> None:
        from tqdm import tqdm

        self.failures = 0
        self.bar = tqdm(total=total, unit="video", desc="extract", file=sys.stderr)
        if cached:
            self.bar.write(f"{cached} input(s) already cached")

    def advance(self, result: InputResult) -> None:
        if result.status == "cached":  # counted by `start`; the bar is for work done
            return
        if self.video_bar is not None:
            self.video_bar.close()
            self.video_bar = None
        if result.status == "failed":
            self.failures += 1
            self.bar.write(
                f"failed {shown(result.path)}: {result.reason} ({shown(result.message or '')})"
            )
        self.bar.update(1)
        self.bar.set_postfix(failed=self.failures)

    video_bar = None

    def position(self, path: str, seconds_done: float, seconds_total: float) -> None:
        """A second bar for a long video: seconds of it extracted so far."""
        from tqdm import tqdm

        name = shown(Path(path).name)
        if self.video_bar is None or self.video_bar.desc != name:
            if self.video_bar is not None:
                self.video_bar.close()
            self.video_bar = tqdm(
                total=round(seconds_total, 1),
                unit="s",
                desc=name,
                file=sys.stderr,
                leave=False,
            )
        self.video_bar.n = round(min(seconds_done, seconds_total), 1)
        self.video_bar.refresh()

    def close(self) -> None:
        if self.video_bar is not None:
            self.video_bar.close()
        self.bar.close()


def extract(
    inputs: list[str] = typer.Argument(None, help="Video files, folders, or .csv/.txt path lists."),
    out: Path = typer.Option(Path("cache"), "--out", "-o", help="Cache folder."),
    # Each option below is a field of ExtractConfig: default and help come from there.
    extractors: str = option(ExtractConfig, "extractors"),
    frames: int = option(ExtractConfig, "frames"),
    fps: float = option(ExtractConfig, "fps"),
    windows: int = option(ExtractConfig, "windows"),
    window_every: float = option(ExtractConfig, "window_every"),
    pdq_fps: float = option(ExtractConfig, "pdq_fps"),
    device: str = option(ExtractConfig, "device"),
    batch_size: int = option(ExtractConfig, "batch_size"),
    workers: int = option(ExtractConfig, "workers"),
    shard_size: int = option(ExtractConfig, "shard_size"),
    weights_dir: Path = option(ExtractConfig, "weights_dir", envvar="HARMCACHE_WEIGHTS_DIR"),
    random_init: bool = option(ExtractConfig, "random_init"),
    seed: int = option(ExtractConfig, "seed"),
    tta: str = option(ExtractConfig, "tta"),
    yolo_imgsz: int = option(ExtractConfig, "yolo_imgsz"),
    slowfast_crop: int = option(ExtractConfig, "slowfast_crop"),
    slowfast_short_side: int = option(ExtractConfig, "slowfast_short_side"),
    decode_short_side: int = option(ExtractConfig, "decode_short_side"),
    engine: str = option(ExtractConfig, "engine"),
    ray_address: str = option(ExtractConfig, "ray_address"),
    gpus_per_worker: float = option(ExtractConfig, "gpus_per_worker"),
    json_out: bool = typer.Option(False, "--json", help="End stdout with one JSON summary line."),
    strict: bool = typer.Option(False, help="Exit non-zero if any input failed."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Decode each video once and cache YOLO, CLIP and SlowFast features and PDQ hashes in HDF5
    shards."""
    given = dict(locals())
    from harmcache.extract.api import extract as extract_videos

    setup_logging(verbose)
    config = ExtractConfig(**{f.name: given[f.name] for f in dataclasses.fields(ExtractConfig)})
    progress = BarProgress() if sys.stderr.isatty() else Progress()
    summary = extract_videos(inputs or [], out, config, progress=progress)
    typer.echo(
        f"extracted {summary.count('extracted')}, cached {summary.count('cached')}, "
        f"failed {summary.count('failed')} of {len(summary.inputs)} input(s) "
        f"in {summary.seconds:.1f} s -> {shown(str(out))}",
        err=json_out,
    )
    for failure in summary.failed:
        where, why = shown(failure.path), shown(failure.message or "")
        typer.echo(f"  failed {where}: {failure.reason}: {why}", err=True)
    if json_out:
        print_json_line(summary.to_json())
    if strict and summary.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(handle_errors(extract))
