"""A small synthetic labelled video set with a planted visual difference.

Harmful clips are warm, flickering and have a fast-moving bright block; safe clips are cool,
steady and smooth. Harmful outnumber safe 2.68 : 1, as in earlier experiments (see
docs/design-notes.md#class-imbalance-and-pos-weight).

The long set (`make_long_demo_set`) is for localization: 30-60 s videos that are safe
throughout, except that each harmful one holds one 4-10 s harmful event somewhere, written to
an events.csv (path,start,end) beside its labels.csv.

The sound set (`make_audio_demo_set`) is for the audio extractor: 1-2 s clips whose pictures
are drawn alike for both classes and whose sound tracks are soft noise and a hum, plus one loud
burst in the harmful ones. Only the sound tells them apart.

The image set (`make_image_demo_set`) is still pictures drawn like one frame of the clips, in
each of the image formats harmcache reads (jpg, png, webp, bmp).

The multi-category set, with its taxonomy and moderation policy, is in `harmcache.demo_multi`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from harmcache.errors import UsageError
from harmcache.video.encode import write_video

HARMFUL_PER_SAFE = 2.68


@contextmanager
def writing(out: Path, what: str) -> Iterator[None]:
    """Every path a demo set writes is under `out`, so a clash is with something the user put
    there: a one-line error naming it."""
    try:
        yield
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
        raise UsageError(
            f"cannot write the {what} into {out}: {exc.strerror}: {exc.filename}"
        ) from None


def write_csv(path: Path, header: list[str], rows: list[tuple]) -> Path:
    """A demo set's CSV (labels, events): the header, then the rows; returns its path."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def demo_frames(
    harmful: bool, rng: np.random.Generator, *, n_frames: int = 24, size: tuple[int, int] = (72, 96)
) -> np.ndarray:
    """(n_frames, H, W, 3) uint8 frames for one clip."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base_hue = rng.uniform(0.8, 1.0)
    frames = np.empty((n_frames, h, w, 3), dtype=np.uint8)
    for t in range(n_frames):
        if harmful:
            flicker = 0.5 + 0.5 * np.sin(t * 1.7 + rng.uniform(0, 0.3))
            r = 150 + 100 * flicker * base_hue
            g = 40 + 30 * np.sin(xx / 7 + t)
            b = 30 + 0 * xx
            img = np.stack([np.broadcast_to(r, xx.shape), g, b], axis=-1)
            cx = int((t * 11 + rng.integers(0, 5)) % max(w - 20, 1))
            cy = int((t * 7) % max(h - 20, 1))
            img[cy : cy + 20, cx : cx + 20] = 255
        else:
            r = 30 + 20 * np.sin(xx / 30)
            g = 90 + 40 * np.cos(yy / 25 + t * 0.05)
            b = 160 + 60 * base_hue + 0 * xx
            img = np.stack([r, g, b], axis=-1)
        noise = rng.normal(0, 6, size=img.shape)
        frames[t] = np.clip(img + noise, 0, 255).astype(np.uint8)
    return frames


def make_demo_set(out_dir: str | Path, *, n_safe: int = 13, seed: int = 0) -> Path:
    """Write the clips into out_dir/{harmful,safe}/ and a labels.csv (path,label); returns it."""
    if n_safe < 1:
        raise UsageError(f"--n-safe must be at least 1, got {n_safe}")
    out = Path(out_dir)
    with writing(out, "demo set"):
        return _write_demo_set(out, n_safe, seed)


def _write_demo_set(out: Path, n_safe: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    n_harmful = round(n_safe * HARMFUL_PER_SAFE)
    rows = []
    for label, count in ((1, n_harmful), (0, n_safe)):
        folder = "harmful" if label else "safe"
        for i in range(count):
            name = f"{folder}/{folder}_{i:03d}.mp4"
            frames = demo_frames(bool(label), rng, n_frames=int(rng.integers(16, 33)))
            write_video(out / name, frames, fps=8, codec="libx264")
            rows.append((name, label))
    return write_csv(out / "labels.csv", ["path", "label"], rows)


LONG_FPS = 4
LONG_SIZE = (48, 64)


def make_long_demo_set(
    out_dir: str | Path,
    *,
    n_harmful: int = 8,
    n_safe: int = 8,
    seconds: tuple[float, float] = (30.0, 60.0),
    event_seconds: tuple[float, float] = (4.0, 10.0),
    size: tuple[int, int] = LONG_SIZE,
    fps: int = LONG_FPS,
    seed: int = 0,
) -> tuple[Path, Path]:
    """Write long videos into out_dir/{harmful,safe}/ with labels.csv (path,label) and
    events.csv (path,start,end: the one harmful event of each harmful video, in seconds);
    returns (labels, events). Frames are small and the frame rate low so the set is quick to
    write and extract."""
    if n_harmful < 1 or n_safe < 1:
        raise UsageError(
            f"need at least one harmful and one safe long video, got {n_harmful}, {n_safe}"
        )
    if not 0 < event_seconds[0] <= event_seconds[1] < seconds[0] <= seconds[1]:
        raise UsageError(
            f"events ({event_seconds}) must be shorter than the videos ({seconds}) and positive"
        )
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    labels, events = [], []
    with writing(out, "long demo set"):
        for label, count in ((1, n_harmful), (0, n_safe)):
            folder = "harmful" if label else "safe"
            for i in range(count):
                name = f"{folder}/long_{folder}_{i:03d}.mp4"
                n_frames = int(round(rng.uniform(*seconds) * fps))
                frames = demo_frames(False, rng, n_frames=n_frames, size=size)
                if label:
                    length = int(round(rng.uniform(*event_seconds) * fps))
                    first = int(rng.integers(0, n_frames - length + 1))
                    frames[first : first + length] = demo_frames(
                        True, rng, n_frames=length, size=size
                    )
                    events.append((name, first / fps, (first + length) / fps))
                write_video(out / name, frames, fps=fps, codec="libx264")
                labels.append((name, label))
    return (
        write_csv(out / "labels.csv", ["path", "label"], labels),
        write_csv(out / "events.csv", ["path", "start", "end"], events),
    )


SOUND_RATE = 44100
"""The sound set's audio rate: a common one, so the extractor's resampling is exercised."""
BURST_SECONDS = 0.25


def demo_sound(
    harmful: bool, rng: np.random.Generator, seconds: float, *, sample_rate: int = SOUND_RATE
) -> np.ndarray:
    """(2, S) float32 stereo samples: soft noise and a quiet hum; a harmful clip adds one loud
    burst of noise somewhere in it."""
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    hum = 0.05 * np.sin(2 * np.pi * rng.uniform(110, 330) * t)
    sound = np.stack([hum + rng.normal(0, 0.01, n) for _ in range(2)])
    if harmful:
        length = int(BURST_SECONDS * sample_rate)
        start = int(rng.integers(0, max(n - length, 0) + 1))
        burst = rng.uniform(-0.8, 0.8, (2, min(length, n - start)))
        sound[:, start : start + burst.shape[1]] += burst
    return np.clip(sound, -1, 1).astype(np.float32)


def make_audio_demo_set(
    out_dir: str | Path,
    *,
    n_harmful: int = 8,
    n_safe: int = 8,
    seconds: tuple[float, float] = (1.0, 2.0),
    size: tuple[int, int] = (48, 64),
    fps: int = 8,
    seed: int = 0,
) -> Path:
    """Write clips into out_dir/{harmful,safe}/ whose pictures are drawn alike and whose sound
    holds a loud burst in the harmful ones, and a labels.csv (path,label); returns it."""
    if n_harmful < 1 or n_safe < 1:
        raise UsageError(
            f"need at least one harmful and one safe sound clip, got {n_harmful}, {n_safe}"
        )
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    rows = []
    with writing(out, "sound demo set"):
        for label, count in ((1, n_harmful), (0, n_safe)):
            folder = "harmful" if label else "safe"
            for i in range(count):
                name = f"{folder}/sound_{folder}_{i:03d}.mp4"
                n_frames = int(round(rng.uniform(*seconds) * fps))
                frames = demo_frames(False, rng, n_frames=n_frames, size=size)
                sound = demo_sound(bool(label), rng, n_frames / fps)
                write_video(out / name, frames, fps=fps, codec="libx264", audio=sound)
                rows.append((name, label))
    return write_csv(out / "labels.csv", ["path", "label"], rows)


IMAGE_FORMATS = ("jpg", "png", "webp", "bmp")


def make_image_demo_set(
    out_dir: str | Path,
    *,
    n_harmful: int = 8,
    n_safe: int = 8,
    size: tuple[int, int] = (96, 128),
    seed: int = 0,
) -> Path:
    """Write still images into out_dir/{harmful,safe}/, drawn like one frame of the demo clips
    and cycling through the image formats, and a labels.csv (path,label); returns it."""
    from PIL import Image

    if n_harmful < 1 or n_safe < 1:
        raise UsageError(f"need at least one harmful and one safe image, got {n_harmful}, {n_safe}")
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    rows = []
    with writing(out, "image demo set"):
        for label, count in ((1, n_harmful), (0, n_safe)):
            folder = "harmful" if label else "safe"
            (out / folder).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                name = f"{folder}/image_{folder}_{i:03d}.{IMAGE_FORMATS[i % len(IMAGE_FORMATS)]}"
                frame = demo_frames(bool(label), rng, n_frames=1, size=size)[0]
                Image.fromarray(frame).save(out / name)
                rows.append((name, label))
    return write_csv(out / "labels.csv", ["path", "label"], rows)
