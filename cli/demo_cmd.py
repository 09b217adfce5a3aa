"""`harmcache demo-data`: the built-in demo set."""

from __future__ import annotations

from pathlib import Path

import typer

from harmcache.errors import UsageError

from .common import handle_errors


def demo_data(
    out: Path = typer.Argument(..., help="Folder to write the clips and labels.csv into."),
    n_safe: int = typer.Option(13, help="Safe clips; harmful clips are 2.68 times as many."),
    seed: int = typer.Option(0, help="Random seed."),
    n_long: int = typer.Option(
        8, help="Long (30-60 s) videos of each class in OUT/long/, with events.csv (0: none)."
    ),
    n_audio: int = typer.Option(
        0,
        help="Sound clips of each class in OUT/audio/: alike pictures, a loud burst in the "
        "harmful ones' sound (0: none).",
    ),
    n_images: int = typer.Option(
        0, help="Still images of each class in OUT/images/ (jpg, png, webp, bmp; 0: none)."
    ),
    n_multi: int = typer.Option(
        0,
        help="Multi-category clips in OUT/multi/ (fighting, weapons, gore, screaming, "
        "overlapping), with taxonomy.yaml and policy.yaml (0: none; 96 suffice to certify "
        "the policy).",
    ),
) -> None:
    """Write a small synthetic labelled video set with a planted harmful/safe difference, long
    videos in OUT/long/ where each harmful one holds one short harmful event, and (--n-audio)
    sound clips in OUT/audio/ told apart by their sound alone, (--n-images) still images in
    OUT/images/, and (--n-multi) clips in OUT/multi/ carrying several harm categories each,
    with the taxonomy and the moderation policy that go with them."""
    from harmcache.demo import (
        make_audio_demo_set,
        make_demo_set,
        make_image_demo_set,
        make_long_demo_set,
    )
    from harmcache.demo_multi import make_multi_demo_set

    if n_long < 0:
        raise UsageError(f"--n-long must be 0 or more, got {n_long}")
    if n_audio < 0:
        raise UsageError(f"--n-audio must be 0 or more, got {n_audio}")
    if n_images < 0:
        raise UsageError(f"--n-images must be 0 or more, got {n_images}")
    if n_multi < 0:
        raise UsageError(f"--n-multi must be 0 or more, got {n_multi}")
    labels = make_demo_set(out, n_safe=n_safe, seed=seed)
    typer.echo(f"wrote demo videos and {labels}")
    if n_long:
        long_labels, events = make_long_demo_set(
            out / "long", n_harmful=n_long, n_safe=n_long, seed=seed
        )
        typer.echo(f"wrote long demo videos, {long_labels} and {events}")
    if n_audio:
        sound_labels = make_audio_demo_set(
            out / "audio", n_harmful=n_audio, n_safe=n_audio, seed=seed
        )
        typer.echo(f"wrote sound demo videos and {sound_labels}")
    if n_images:
        image_labels = make_image_demo_set(
            out / "images", n_harmful=n_images, n_safe=n_images, seed=seed
        )
        typer.echo(f"wrote demo images and {image_labels}")
    if n_multi:
        multi_labels = make_multi_demo_set(out / "multi", n_videos=n_multi, seed=seed)
        folder = multi_labels.parent
        typer.echo(
            f"wrote multi-category demo videos, {multi_labels}, {folder / 'taxonomy.yaml'} "
            f"and {folder / 'policy.yaml'}"
        )


def register(app: typer.Typer) -> None:
    app.command("demo-data")(handle_errors(demo_data))
