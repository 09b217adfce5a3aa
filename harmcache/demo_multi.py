"""A planted multi-category set for the moderation policy: each video carries any of four
categories, each planted by its own cue, on the demo's safe clip (cool, steady, smooth; soft
noise and a hum).

    fighting   motion: two bright blocks darting across the frame, the picture flickering
    weapons    a shape: a long green-striped blade lying across the frame, still
    gore       a colour: dark red pools
    screaming  sound: a loud, wavering high-pitched wail

Categories overlap (a video may carry all four) and some videos carry none. The parent
category `violence` (fighting or weapons) is not a column of labels.csv: taxonomy.yaml derives
it. policy.yaml asks for a removal and a review threshold on violence and a review threshold on
gore, at levels the set's validation split holds enough videos to certify.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harmcache.demo import demo_frames, demo_sound, write_csv, writing
from harmcache.errors import UsageError
from harmcache.video.encode import write_video

N_MULTI = 96
"""The set's size for the policy demo: its validation split then holds 29 violent and 19 gory
videos, enough to certify policy.yaml, and extraction with --random-init takes a minute or two
on two CPU cores."""

CATEGORIES = ("fighting", "weapons", "gore", "screaming")
TAXONOMY = {"violence": ("fighting", "weapons")}
"""Parent → children: a parent is positive iff a child is."""

MIXES = tuple(
    tuple(c for bit, c in enumerate(CATEGORIES) if k >> bit & 1)
    for k in range(2 ** len(CATEGORIES))
)
"""The categories of video i are MIXES[i % 16], every subset once: each category in half the
videos and independent of the others (a head cannot learn one category from another's cue),
violence in 12 of 16, gore without violence in 2, none in 1."""

SPLITS = ("train", "val", "test", "train", "val", "train", "val", "test", "train", "val")
"""Video i's split is SPLITS[(i + i // 16) % 10]: 4 in 10 train, 4 validation (certificates
need labelled positives there), 2 test; the offset moves each mix through every split."""

BLANK_EVERY = 4
"""Every 4th training video has one category left unlabelled (a blank cell, masked), rotating
over the categories. Validation and test stay fully labelled: they hold the certificates and
the reported numbers."""

BLOCK = 22
"""The side of each fighting block, in pixels."""
GORE_RED = np.array([170, 10, 20])
GORE_SHARE = 0.3
"""The share of the picture gore's pools cover, at least."""
BLADE_LIGHT, BLADE_DARK = np.array([40, 220, 60]), np.array([15, 15, 15])
"""The blade's stripes: a pattern no other cue has, still and high in contrast, and green, so
that no other cue's colour (white, red) shares its high channel."""

SOUND_RATE = 22050
"""Mono sound at half the usual rate: encoding it is most of the cost of writing a clip, and the
wail's harmonics stay under its Nyquist frequency."""

TAXONOMY_NOTE = "# A parent is positive iff a child is; gore and screaming stand alone.\n"

POLICY = """\
# Levels this set's validation split can certify at 90% confidence: removal at precision 0.9
# would take about 66 violent videos there, at 0.7 about 20. The review budget's bound holds
# over every threshold at once, so on 38 validation videos it is loose (about 0.5 where 0.1
# is observed): a real policy's budget is tighter, and certified on more videos.
confidence: 0.9
review_budget: 0.6
categories:
  violence: {remove: "precision>=0.7", review: "recall>=0.8"}
  gore: {review: "recall>=0.75"}
"""


def multi_frames(
    categories: tuple[str, ...],
    rng: np.random.Generator,
    *,
    n_frames: int = 24,
    size: tuple[int, int] = (72, 96),
) -> np.ndarray:
    """(n_frames, H, W, 3) uint8 frames: the safe clip with each category's visual cue. Only
    the background flickers, so no cue dims another."""
    h, w = size
    frames = demo_frames(False, rng, n_frames=n_frames, size=size).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if "fighting" in categories:
        flicker = 0.75 + 0.5 * np.sin(np.arange(n_frames) * 1.7 + rng.uniform(0, 0.3))
        frames *= flicker[:, None, None, None]
    blade = np.zeros((h, w), dtype=bool)
    if "weapons" in categories:
        # Near the centre: random-init features depend on where a small shape lies.
        angle = rng.uniform(-0.35, 0.35)
        cy, cx = rng.uniform(0.45 * h, 0.55 * h), rng.uniform(0.45 * w, 0.55 * w)
        along = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
        across = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
        blade = (np.abs(along) < 0.4 * w) & (np.abs(across) < 7)
        stripe = (along // 4) % 2 == 0
    if "gore" in categories:
        # Pools until GORE_SHARE of the picture is red, the blade lying on top of them.
        pools = np.zeros((h, w), dtype=bool)
        while (pools & ~blade).mean() < GORE_SHARE:
            cy, cx = rng.uniform(0.15 * h, 0.85 * h), rng.uniform(0.15 * w, 0.85 * w)
            r = rng.uniform(9, 16)
            pools |= (yy - cy) ** 2 + ((xx - cx) * 0.8) ** 2 < r**2
        frames[:, pools] = GORE_RED + rng.normal(0, 8, (n_frames, pools.sum(), 3))
    if "weapons" in categories:
        frames[:, blade & stripe] = BLADE_LIGHT
        frames[:, blade & ~stripe] = BLADE_DARK
    if "fighting" in categories:  # two blocks darting at each other
        for t in range(n_frames):
            for sign in (1, -1):
                cx = int((sign * t * 11 + rng.integers(0, 5)) % (w - BLOCK))
                cy = int((sign * t * 7 + rng.integers(0, 5)) % (h - BLOCK))
                frames[t, cy : cy + BLOCK, cx : cx + BLOCK] = 255
    return np.clip(frames, 0, 255).astype(np.uint8)


def multi_sound(
    screaming: bool, rng: np.random.Generator, seconds: float, *, sample_rate: int = SOUND_RATE
) -> np.ndarray:
    """(S,) float32 mono samples: the demo's soft noise and hum; a screaming clip adds a loud
    wail, its pitch wavering around 1-2 kHz, over nearly all of the clip."""
    sound = demo_sound(False, rng, seconds, sample_rate=sample_rate)[0]
    if screaming:
        n = len(sound)
        length = int(n * rng.uniform(0.85, 1.0))
        start = int(rng.integers(0, n - length + 1))
        t = np.arange(length) / sample_rate
        pitch = rng.uniform(1000, 1600) * (1 + 0.25 * np.sin(2 * np.pi * rng.uniform(4, 7) * t))
        phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
        wail = 0.5 * np.sin(phase) + 0.2 * np.sin(2 * phase) + 0.1 * np.sin(3 * phase)
        sound[start : start + length] += wail.astype(np.float32)
    return np.clip(sound, -1, 1).astype(np.float32)


def multi_labels(n_videos: int) -> list[tuple[str, ...]]:
    """The labels.csv rows of a set of `n_videos`: (path, fighting, weapons, gore, screaming,
    split), the categories "1", "0" or "" (blank). Video i carries MIXES[i % 16]."""
    rows, n_train = [], 0
    for i in range(n_videos):
        mix = MIXES[i % len(MIXES)]
        split = SPLITS[(i + i // len(MIXES)) % len(SPLITS)]
        cells = [str(int(c in mix)) for c in CATEGORIES]
        if split == "train":
            n_train += 1
            if n_train % BLANK_EVERY == 0:
                cells[(n_train // BLANK_EVERY) % len(CATEGORIES)] = ""
        rows.append((f"multi_{i:03d}.mp4", *cells, split))
    return rows


def make_multi_demo_set(
    out_dir: str | Path, *, n_videos: int = N_MULTI, fps: int = 8, seed: int = 0
) -> Path:
    """Write out_dir/multi_*.mp4, labels.csv (`multi_labels`), taxonomy.yaml and policy.yaml;
    returns the labels' path."""
    if n_videos < 1:
        raise UsageError(f"--n-multi must be at least 1, got {n_videos}")
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    rows = multi_labels(n_videos)
    with writing(out, "multi-category demo set"):
        for i, row in enumerate(rows):
            mix = MIXES[i % len(MIXES)]
            n_frames = int(rng.integers(16, 33))
            frames = multi_frames(mix, rng, n_frames=n_frames)
            sound = multi_sound("screaming" in mix, rng, n_frames / fps)
            write_video(
                out / row[0], frames, fps=fps, codec="libx264", audio=sound, sample_rate=SOUND_RATE
            )
        (out / "taxonomy.yaml").write_text(
            TAXONOMY_NOTE + "".join(f"{p}: [{', '.join(c)}]\n" for p, c in TAXONOMY.items())
        )
        (out / "policy.yaml").write_text(POLICY)
        return write_csv(out / "labels.csv", ["path", *CATEGORIES, "split"], rows)
