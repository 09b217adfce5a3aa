"""Still images as one-frame items: opened and checked by Pillow, decoded whole.

An image goes through the same probe, chunk plan and ledger as a video. It is a one-frame item
at time 0 with duration 0: CLIP and YOLO see its one frame; SlowFast, which needs motion, gives
it no rows ("not applicable", which stage two masks, never a failure). EXIF orientation is
applied, so a phone photo is seen upright. A file Pillow cannot decode completely (a fake
`.jpg`, a truncated download) is refused at the probe: `unreadable` or `decode_error`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from harmcache.errors import VideoError
from harmcache.types import VideoInfo

IMAGE_EXTENSIONS = frozenset(".jpg .jpeg .png .webp .bmp".split())
PILLOW_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
"""The decoders Pillow may pick (by content, not name): no optional plugin is ever tried."""
IMAGE_BACKEND = "image"
"""The `backend` an image's info records (and `cache info` counts)."""


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


class ImageSource:
    """The decode-backend interface (`info`, `timeline`, `frames`) for one still image."""

    backend = IMAGE_BACKEND

    def __init__(self, path: Path):
        from harmcache.video.decode import Timeline

        self._path = Path(path)
        rgb = self._decode()
        height, width = rgb.shape[:2]
        self.info = VideoInfo(1, 0.0, 0.0, int(width), int(height), IMAGE_BACKEND)
        zero = np.zeros(1, dtype=np.int64)
        self.timeline = Timeline(np.zeros(1), zero, zero)

    def _decode(self) -> np.ndarray:
        """The image as RGB uint8 (H, W, 3), upright; every pixel decoded, so a truncated file
        fails here and not later."""
        from PIL import Image, ImageOps, UnidentifiedImageError

        _check_header(self._path)
        try:
            with Image.open(self._path, formats=PILLOW_FORMATS) as image:
                image.load()
                upright = ImageOps.exif_transpose(image)
                return np.asarray(upright.convert("RGB"))
        except UnidentifiedImageError:
            formats = ", ".join(PILLOW_FORMATS)
            raise VideoError("unreadable", f"not an image ({formats})") from None
        except Image.DecompressionBombError as exc:
            raise VideoError("unreadable", f"refused as a decompression bomb ({exc})") from None
        except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt image data
            raise VideoError("decode_error", f"cannot decode the image ({exc})") from None

    def frames(self, chunk) -> Iterator[tuple[int, np.ndarray]]:
        if 0 in chunk.indices:
            yield 0, self._decode()

    def read(self, indices: np.ndarray) -> np.ndarray:
        return np.stack([self._decode() for _ in indices])


def _check_header(path: Path) -> None:
    """Refuse a file whose first bytes no allowed decoder accepts, before `Image.open` sees it:
    a library may wrap `Image.open` to fetch plugins for files Pillow cannot identify (the
    ultralytics HEIF hook does), and that must never start for a fake `.jpg`."""
    from PIL import Image

    Image.init()  # registers every bundled decoder (preinit leaves WebP out)
    with open(path, "rb") as f:
        prefix = f.read(16)
    accepts = [Image.OPEN[fmt][1] for fmt in PILLOW_FORMATS if fmt in Image.OPEN]
    if not any(accept is None or accept(prefix) for accept in accepts):
        formats = ", ".join(PILLOW_FORMATS)
        raise VideoError("unreadable", f"not an image ({formats})")


def reopened_image(path: str | Path) -> ImageSource:
    """An image source for a decode worker: the probe already checked the file."""
    source = ImageSource.__new__(ImageSource)
    source._path = Path(path)
    return source
