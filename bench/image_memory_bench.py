"""Still images decode in bounded memory: the pixel budget (`PIXEL_BUDGET`, 50 MP) caps what
one picture can cost, and a picture within it is not copied needlessly.

Claim and target: the peak RSS of probing and decoding one 12000x12000 PNG (`ImageSource(path)`,
then `frames`) is at most 1.5x that of one 1920x1080 PNG. Pillow cannot decode a PNG reduced,
so the big one is refused at the probe, from its header; the figure shows that nothing of it
was decoded. Beside it, for the record (no target):

- a 7000x7000 PNG (49 MP, within the budget): its peak over the child's baseline, in bytes a
  pixel (Pillow holds 4, the RGB array 3);
- a 12000x12000 baseline JPEG, decoded at 1/2 by the JPEG decoder's DCT scaling, and the same
  picture as a progressive JPEG, refused (its decoder holds every coefficient at any scale);
- the same files through `VideoSource(path).read([0])`, which adds the frame array that the
  decode chunk writes into.

Each figure is one fresh child process's VmHWM (not ru_maxrss, which keeps the parent's peak
across fork and exec), with its baseline after the imports beside it. The PNGs are written
row by row (flat colours and a gradient band), so writing them costs no memory either.

    .venv/bin/python -m bench --only image-memory [--quick]   # -> results/image-memory-cpu.json
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RSS_TARGET = 1.5

CHILD = """
import json, sys
from pathlib import Path
import numpy as np

def hwm_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0

from PIL import Image
from harmcache.errors import VideoError
from harmcache.video.chunks import plan_chunks
from harmcache.video.decode import VideoSource
from harmcache.video.image import ImageSource
Image.init()
baseline = hwm_mb()
path, way = Path(sys.argv[1]), sys.argv[2]
shape = None
try:
    if way == "image_source":
        source = ImageSource(path)
        chunk = plan_chunks(np.zeros(1, dtype=np.int64), source.stream_index, 1)[0]
        for _, frame in source.frames(chunk):
            shape = list(frame.shape)
    else:
        with VideoSource(path) as video:
            shape = list(video.read(np.array([0])).shape[1:])
    outcome = "decoded"
except VideoError as exc:
    outcome = f"{exc.reason}: {exc.message}"
print(json.dumps({"outcome": outcome, "shape": shape, "baseline_mb": baseline,
                  "peak_mb": hwm_mb()}))
"""


def write_png(path: Path, width: int, height: int) -> Path:
    """An RGB PNG written a row at a time: a flat colour with a gradient band."""
    row = np.full((width, 3), (40, 90, 160), dtype=np.uint8)
    band = slice(width // 4, width // 2)
    row[band] = np.linspace(0, 255, band.stop - band.start, dtype=np.uint8)[:, None]
    line = b"\x00" + row.tobytes()  # filter type 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    packer = zlib.compressobj(1)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        for _ in range(height):
            data = packer.compress(line)
            if data:
                f.write(chunk(b"IDAT", data))
        f.write(chunk(b"IDAT", packer.flush()))
        f.write(chunk(b"IEND", b""))
    return path


def write_jpegs(folder: Path, side: int) -> tuple[Path, Path]:
    """A baseline and a progressive JPEG of a side x side picture (flat, a bright quarter)."""
    from PIL import Image

    image = Image.new("RGB", (side, side), (40, 90, 160))
    image.paste((250, 250, 250), (0, 0, side // 2, side // 2))
    baseline, progressive = folder / f"base{side}.jpg", folder / f"prog{side}.jpg"
    image.save(baseline, quality=90)
    image.save(progressive, quality=90, progressive=True)
    return baseline, progressive


def measure(path: Path, way: str) -> dict:
    env = {**os.environ, "YOLO_OFFLINE": "1", "HARMCACHE_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), way],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["added_mb"] = out["peak_mb"] - out["baseline_mb"]
    return out


def run(results_dir: str | Path, *, quick: bool = False) -> dict:
    from bench.meta import run_metadata
    from harmcache.video.image import PIXEL_BUDGET

    results_dir = Path(results_dir)
    measured: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = {
            "png_1920x1080": write_png(tmp / "hd.png", 1920, 1080),
            "png_12000x12000": write_png(tmp / "huge.png", 12000, 12000),
        }
        if not quick:
            files["png_7000x7000"] = write_png(tmp / "big.png", 7000, 7000)
            files["jpeg_1920x1080"] = write_jpegs(tmp, 1920)[0]
            base, prog = write_jpegs(tmp, 12000)
            files["jpeg_12000x12000_baseline"] = base
            files["jpeg_12000x12000_progressive"] = prog
        for name, path in files.items():
            for way in ("image_source", "video_source_read"):
                measured[f"{name}/{way}"] = {**measure(path, way), "file_mb": _mb(path)}
    hd, huge = measured["png_1920x1080/image_source"], measured["png_12000x12000/image_source"]
    ratio = huge["peak_mb"] / hd["peak_mb"]
    summary = {
        "peak_rss_mb_png_1920x1080": round(hd["peak_mb"], 1),
        "peak_rss_mb_png_12000x12000": round(huge["peak_mb"], 1),
        "png_12000x12000_outcome": huge["outcome"],
        "rss_ratio": round(ratio, 3),
        "rss_ratio_target": RSS_TARGET,
        "rss_ok": ratio <= RSS_TARGET,
        "baseline_mb": round(hd["baseline_mb"], 1),
        "pixel_budget_mp": PIXEL_BUDGET / 1e6,
    }
    if not quick:
        big = measured["png_7000x7000/image_source"]
        summary["png_7000x7000_added_bytes_per_pixel"] = round(
            big["added_mb"] * 2**20 / (7000 * 7000), 2
        )
        for name in ("jpeg_12000x12000_baseline", "jpeg_12000x12000_progressive"):
            m = measured[f"{name}/image_source"]
            summary[f"peak_rss_mb_{name}"] = round(m["peak_mb"], 1)
            summary[f"{name}_outcome"] = m["outcome"] if m["shape"] is None else str(m["shape"])
    results = {
        "what": "still images: peak RSS of a 12000x12000 PNG vs a 1920x1080 PNG, probe + frames",
        "meta": run_metadata(),
        "summary": summary,
        "measured": measured,
        "load_average": os.getloadavg(),
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    name = "image-memory-cpu-quick.json" if quick else "image-memory-cpu.json"
    (results_dir / name).write_text(json.dumps(results, indent=2) + "\n")
    return results


def _mb(path: Path) -> float:
    return round(path.stat().st_size / 1e6, 2)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    print(
        json.dumps(
            run(Path(__file__).parent / "results", quick="--quick" in sys.argv)["summary"], indent=2
        )
    )
