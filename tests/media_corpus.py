"""A folder of the files people actually upload, made at test time with the ffmpeg CLI, PyAV and
Pillow: phone videos with a display rotation (H.264 .mp4 and 10-bit HEVC .MOV), a lossless cut
(an edit list), variable frame rate with a gap, non-square pixels, 7.1 sound, old and broadcast
containers, odd file names, a dangling link, and pictures in every mode, format and EXIF
orientation.

`build_corpus(folder)` writes it and returns what each input must come out as.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SIZE = "96x64"
"""Coded size of the corpus videos: small, so the default backbones stay cheap."""


@dataclass(frozen=True)
class Expect:
    status: str
    """extracted | failed"""
    reason: str | None = None
    kind: str = "video"
    """video | image | other"""
    display: str | None = None
    """The display label a rotated or non-square video must record."""


def need_ffmpeg() -> None:
    import pytest

    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        pytest.fail("the ffmpeg CLI is missing: `make install` installs it (Debian's ffmpeg)")


def ffmpeg(*args: str) -> None:
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-y", *map(str, args)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def _source(seconds: float = 1.0, rate: int = 12, size: str = SIZE) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]


def _sound(channels: str, seconds: float = 1.0) -> list[str]:
    """A sine on every channel of `channels` (an FFmpeg layout: 7.1, 5.1, stereo, mono)."""
    return [
        "-f",
        "lavfi",
        "-i",
        f"sine=f=440:d={seconds}:r=48000",
        "-af",
        f"pan={channels}|" + "|".join(f"c{i}=c0" for i in range(_channel_count(channels))),
    ]


def _channel_count(layout: str) -> int:
    return {"mono": 1, "stereo": 2, "quad": 4, "5.1": 6, "7.1": 8}[layout]


H264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "6"]
HEVC10 = [
    "-c:v",
    "libx265",
    "-pix_fmt",
    "yuv420p10le",
    "-tag:v",
    "hvc1",
    "-x265-params",
    "log-level=error",
]


def rotated(src: Path, dst: Path, degrees: int) -> Path:
    """`src` remuxed with a display rotation, as a phone writes portrait video."""
    ffmpeg("-i", src, "-c", "copy", "-metadata:s:v", f"rotate={degrees}", dst)
    return dst


def build_corpus(root: Path) -> dict[str, Expect]:
    """Write the corpus under `root`; returns its inputs (paths relative to `root`, as
    `os.fsencode` bytes decoded with surrogateescape) and what each must come out as."""
    need_ffmpeg()
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Expect] = {}
    tmp = root.parent / (root.name + "-sources")
    tmp.mkdir(exist_ok=True)

    # Phone videos: landscape frames plus a display rotation. The extraction folder holds one
    # of each kind; the other turns and aspects go beside it, for the decode comparisons only
    # (the default backbones cost seconds per video).
    phone = root / "phone"
    phone.mkdir()
    extra = decode_only(root)
    extra.mkdir()
    base = tmp / "base.mp4"
    ffmpeg(*_source(), *H264, base)
    hevc = tmp / "base.mov"
    ffmpeg(*_source(), *HEVC10, hevc)
    for degrees in (90, 270):
        rotated(base, phone / f"rot{degrees}.mp4", degrees)
        out[f"phone/rot{degrees}.mp4"] = Expect("extracted", display=_label(degrees))
    rotated(base, extra / "rot180.mp4", 180)
    rotated(hevc, phone / "IMG_90.MOV", 90)
    out["phone/IMG_90.MOV"] = Expect("extracted", display=_label(90))
    rotated(hevc, extra / "IMG_270.MOV", 270)

    # Edits: a lossless cut (edit list, discarded lead-in packets) and a gap (VFR).
    edits = root / "edits"
    edits.mkdir()
    long = tmp / "long.mp4"
    ffmpeg(*_source(4, 30), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "90", long)
    ffmpeg("-ss", "1.5", "-i", long, "-c", "copy", edits / "cut.mp4")
    out["edits/cut.mp4"] = Expect("extracted")
    ffmpeg(
        *_source(4, 30),
        "-vf",
        "select='not(between(t,1,3))'",
        "-fps_mode",
        "vfr",
        *H264,
        edits / "vfr_gap.mp4",
    )
    out["edits/vfr_gap.mp4"] = Expect("extracted")

    # Non-square pixels (PAL DV-like sample aspect ratios).
    ffmpeg(*_source(1, 25, "180x144"), "-vf", "setsar=16/15", *H264, edits / "pal_16x15.mp4")
    out["edits/pal_16x15.mp4"] = Expect("extracted", display="sar=16:15")
    ffmpeg(*_source(1, 25, "180x144"), "-vf", "setsar=64/45", *H264, extra / "pal_64x45.mp4")

    # 7.1 sound beside the picture, in three codecs.
    sound = root / "sound"
    sound.mkdir()
    for name, codec in (
        ("aac71.mp4", "aac"),
        ("pcm71.mov", "pcm_s16le"),
        ("opus71.mkv", "libopus"),
    ):
        ffmpeg(
            *_source(),
            *_sound("7.1"),
            "-map",
            "0:v",
            "-map",
            "1:a",
            *H264,
            "-c:a",
            codec,
            "-shortest",
            sound / name,
        )
        out[f"sound/{name}"] = Expect("extracted")

    # Old and broadcast containers.
    old = root / "containers"
    old.mkdir()
    ffmpeg(*_source(), "-c:v", "mpeg2video", "-f", "vob", old / "dvd.vob")
    ffmpeg(*_source(0.5, 25, "720x576"), "-c:v", "mpeg2video", "-f", "mxf", old / "broadcast.mxf")
    ffmpeg(*_source(), *H264, "-f", "3g2", old / "phone.3g2")
    ffmpeg(*_source(), "-c:v", "msmpeg4v2", "-f", "asf", old / "old.asf")
    ffmpeg(*_source(), *H264, "-f", "mpegts", "-mpegts_m2ts_mode", "1", old / "cam.m2ts")
    ffmpeg(*_source(), *H264, "-f", "mpegts", old / "cam.mts")
    ffmpeg(*_source(), "-c:v", "libvpx", "-f", "ogg", old / "web.ogv")
    ffmpeg(*_source(), "-c:v", "flv", old / "old.flv")
    for name in (
        "dvd.vob",
        "broadcast.mxf",
        "phone.3g2",
        "old.asf",
        "cam.m2ts",
        "cam.mts",
        "web.ogv",
        "old.flv",
    ):
        out[f"containers/{name}"] = Expect("extracted")

    # Odd names: bytes that are not UTF-8, spaces and quotes, a leading dash, no extension.
    names = root / "names"
    names.mkdir()
    odd = os.fsdecode(b"caf\xe9 \xff.mp4")
    shutil.copy(base, names / odd)
    out["names/" + odd] = Expect("extracted")
    shutil.copy(hevc, names / 'it\'s a "clip" (final).mov')
    out['names/it\'s a "clip" (final).mov'] = Expect("extracted")
    ffmpeg(*_source(1, 12, "64x48"), *H264, names / "-starts-with-dash.mp4")
    out["names/-starts-with-dash.mp4"] = Expect("extracted")
    ffmpeg(*_source(1, 10, "80x48"), *H264, "-f", "mp4", names / "no_extension")
    out["names/no_extension"] = Expect("extracted")
    os.symlink(names / "deleted-long-ago.mp4", names / "dangling.mp4")
    out["names/dangling.mp4"] = Expect("failed", "missing")
    (names / "notes.txt").write_text("not an input: text beside the videos\n")

    out.update(_pictures(root / "pictures"))
    shutil.rmtree(tmp)
    return out


def decode_only(root: Path) -> Path:
    """Where the corpus keeps the files only the decode comparisons read."""
    return root.parent / (root.name + "-decode-only")


def _label(degrees: int) -> str:
    """The display label of a file made by `rotated(..., degrees)`: the `rotate` tag FFmpeg
    writes is a counter-clockwise turn of the coded picture."""
    return f"rotate_cw={(360 - degrees) % 360}"


def exif_jpeg(picture: np.ndarray, orientation: int) -> bytes:
    """JPEG bytes of `picture` stored as a camera does for EXIF `orientation` (the stored
    pixels turned so that applying the orientation gives `picture` back)."""
    import io

    from PIL import Image

    stored = Image.fromarray(picture)
    # The inverse of each orientation's transform (ImageOps.exif_transpose applies it).
    inverse = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }
    if orientation in inverse:
        stored = stored.transpose(inverse[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    stored.save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def upright_picture(seed: int = 0, h: int = 48, w: int = 80) -> np.ndarray:
    """A smooth picture whose corners differ, so a wrong turn or mirror shows."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (w + h)], axis=-1)
    rgb[: h // 4, : w // 4] = (255, 0, 0)  # top-left red
    return rgb.astype(np.uint8)


def _pictures(folder: Path) -> dict[str, Expect]:
    from PIL import Image

    folder.mkdir()
    out: dict[str, Expect] = {}
    picture = upright_picture()
    for orientation, ext in ((6, ".jfif"), (8, ".jpe"), (3, ".jpg"), (5, ".jpeg")):
        name = f"exif{orientation}{ext}"
        (folder / name).write_bytes(exif_jpeg(picture, orientation))
        out[f"pictures/{name}"] = Expect("extracted", kind="image")
    gray16 = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    Image.fromarray(gray16).save(folder / "gray16.png")
    palette = Image.fromarray(picture).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    palette.save(folder / "palette_alpha.png", transparency=0)
    Image.fromarray(picture).convert("LA").save(folder / "gray_alpha.png")
    Image.fromarray(picture).convert("CMYK").save(folder / "print.jpg")
    Image.fromarray(picture).save(folder / "scan.tif")
    Image.fromarray(picture).save(folder / "scan.tiff", compression="tiff_lzw")
    Image.fromarray(picture).save(folder / "photo.avif")
    for name in (
        "gray16.png",
        "palette_alpha.png",
        "gray_alpha.png",
        "print.jpg",
        "scan.tif",
        "scan.tiff",
        "photo.avif",
    ):
        out[f"pictures/{name}"] = Expect("extracted", kind="image")
    try:
        import pillow_heif

        pillow_heif.from_pillow(Image.fromarray(picture)).save(folder / "IMG_0002.HEIC")
        out["pictures/IMG_0002.HEIC"] = Expect("extracted", kind="image")
    except ImportError:
        pass
    # A 144-megapixel picture: a scan or a panorama (a flat PNG is small on disk).
    huge = Image.new("RGB", (12000, 12000), (40, 90, 160))
    huge.paste((250, 250, 250), (0, 0, 6000, 6000))
    huge.save(folder / "huge.png", compress_level=1)
    # PNG cannot be decoded reduced and whole it costs gigabytes: refused from its header.
    out["pictures/huge.png"] = Expect("failed", "unreadable", kind="image")
    huge.save(folder / "huge.jpg", quality=80)  # a baseline JPEG decodes reduced (DCT scaling)
    out["pictures/huge.jpg"] = Expect("extracted", kind="image")
    return out
