"""`harmcache extract`: stage one."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from harmcache.extract.progress import Progress
from harmcache.extract.summary import InputResult
from harmcache.paths import shown

from .common import handle_errors, print_json_line, setup_logging


class BarProgress(Progress):
    """tqdm bar on a terminal: files hashed while planning, then videos/s, ETA and failures."""

    plan_bar = None

    def hashing(self, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.plan_bar is None and total:
            self.plan_bar = tqdm(total=total, unit="file", desc="hash", file=sys.stderr)
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
        if self.video_bar is not None:
            self.video_bar.close()
            self.video_bar = None
        if result.status == "failed":
            self.failures += 1
            self.bar.write(
                f"failed {shown(result.path)}: {result.reason} ({shown(result.message or '')})"
            )
        if result.status != "cached":
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


def parse_extractors(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def extract(
    inputs: list[str] = typer.Argument(None, help="Video files, folders, or .csv/.txt path lists."),
    out: Path = typer.Option(Path("cache"), "--out", "-o", help="Cache folder."),
    extractors: str = typer.Option("yolo,clip,slowfast", help="Comma-separated extractors."),
    frames: int = typer.Option(
        None, help="Frames sampled uniformly per video (CLIP, YOLO). [default: 32]"
    ),
    fps: float = typer.Option(
        None, help="Instead of --frames: CLIP and YOLO take one frame every 1/F seconds."
    ),
    windows: int = typer.Option(None, help="SlowFast windows per video. [default: 4]"),
    window_every: float = typer.Option(
        None, help="Instead of --windows: one SlowFast window every S seconds."
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(16, help="Frames per forward pass (one video at a time)."),
    workers: int = typer.Option(1, help="Decode worker processes (0 decodes inline)."),
    shard_size: int = typer.Option(8, help="Videos per committed shard."),
    weights_dir: Path = typer.Option(
        None, envvar="HARMCACHE_WEIGHTS_DIR", help="Folder with yolov8n.pt, ViT-B-32.pt, ..."
    ),
    random_init: bool = typer.Option(False, "--random-init", help="Seeded random weights."),
    seed: int = typer.Option(0, help="Seed for --random-init."),
    tta: str = typer.Option(None, help="'flip': average CLIP over mirrored frames."),
    yolo_imgsz: int = typer.Option(640, help="YOLO input size (multiple of 32)."),
    slowfast_crop: int = typer.Option(256, help="SlowFast centre crop (multiple of 32)."),
    slowfast_short_side: int = typer.Option(256, help="SlowFast resize of the short side."),
    decode_short_side: int = typer.Option(360, help="Downscale decoded frames to this short side."),
    engine: str = typer.Option("local", help="local or ray."),
    ray_address: str = typer.Option(None, help="Ray cluster: auto or HOST:PORT."),
    gpus_per_worker: float = typer.Option(None, help="GPUs per Ray actor (default 1 with CUDA)."),
    json_out: bool = typer.Option(False, "--json", help="End stdout with one JSON summary line."),
    strict: bool = typer.Option(False, help="Exit non-zero if any input failed."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Decode each video once and cache YOLO, CLIP and SlowFast features in HDF5 shards."""
    from harmcache.extract.api import extract as extract_videos

    setup_logging(verbose)
    summary = extract_videos(
        inputs or [],
        out,
        extractors=parse_extractors(extractors),
        frames=frames,
        windows=windows,
        fps=fps,
        window_every=window_every,
        device=device,
        batch_size=batch_size,
        workers=workers,
        shard_size=shard_size,
        weights_dir=weights_dir,
        random_init=random_init,
        seed=seed,
        tta=tta,
        engine=engine,
        ray_address=ray_address,
        gpus_per_worker=gpus_per_worker,
        decode_short_side=decode_short_side,
        yolo_imgsz=yolo_imgsz,
        slowfast_crop=slowfast_crop,
        slowfast_short_side=slowfast_short_side,
        progress=BarProgress() if sys.stderr.isatty() else Progress(),
    )
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
