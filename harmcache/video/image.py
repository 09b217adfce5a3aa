"""Still images as one-frame items: told from videos by their first bytes, decoded by Pillow
within a pixel budget, upright, as 8-bit RGB.

An image goes through the same probe, chunk plan and ledger as a video. It is a one-frame item
at time 0 with duration 0: CLIP and YOLO see its one frame; SlowFast, which needs motion, gives
it no rows ("not applicable", which stage two masks, never a failure). EXIF orientation is
applied, so a phone photo is seen upright. A file Pillow cannot decode completely (a fake
`.jpg`, a truncated download) is refused at the probe: `unreadable` or `decode_error`.

What the file holds decides, not its name (`sniff`): a JPEG named `.bin` and a PNG named `.mp4`
are images; an MP4 or a GIF named `.jpg` goes to the video decoders (FFmpeg decodes GIFs, with
their animation). Only bytes that say nothing (an unknown format, an unreadable file) leave the
choice to the name.

Every picture comes out as 8-bit RGB (`_to_rgb`): 8-bit RGB exactly as decoded (the cache's
fingerprints hang on those pixels); 16- and 32-bit integers by their bit depth (the top 8
bits); floats from [0, 1] when they fit in it, else from [0, 255]; transparency composited over
black, which leaves every opaque pixel as it is.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from harmcache.errors import VideoError
from harmcache.types import VideoInfo
from harmcache.video.stream_index import StreamIndex

IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .jfif .png .webp .bmp .dib .tif .tiff .avif .heic .heif .hif".split()
)
"""Names of still images: what a folder is searched for, and the guess for a file whose first
bytes cannot be read."""
PILLOW_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "AVIF", "HEIF")
"""The decoders an image may reach, chosen by its first bytes: no other plugin is ever tried.
HEIF is pillow-heif's (libheif), registered here when first needed; the others are Pillow's."""
IMAGE_BACKEND = "image"
"""The `backend` an image's info records (and `cache info` counts)."""

PIXEL_BUDGET = 50_000_000
"""The most pixels an image is decoded at. Every phone photo (48 and 50 MP sensors) and most
camera photos fit whole; one decode then holds at most about 400 MB (Pillow keeps 4 bytes a
pixel, the RGB array 3 more: bench/image_memory_bench.py), once per decode worker. A bigger
baseline JPEG is decoded reduced by 2, 4 or 8 (the decoder's DCT scaling, cheap); any other
bigger image is refused, as Pillow cannot decode it reduced. It sits below Pillow's own
decompression-bomb limit (89 MP)."""
SNIFF_BYTES = 4096
"""How much of a file `sniff` reads: an MPEG transport stream shows its packet rhythm in it."""
BAND_BYTES = 8 << 20
"""The decoded picture goes into its array in bands of rows this size (a 1080p picture in one
piece), so its bytes are never held twice over."""


# What a file's first bytes say ----------------------------------------------------------------

_HEIF_BRANDS = frozenset(b"heic heix heim heis hevc hevx hevm hevs mif1 msf1 miaf".split())
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
# Sound-only MP4s and Canon's raw photos: nothing a decoder shows.
_NOT_VIDEO_BRANDS = frozenset({b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B ", b"crx "})
_QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
_ASF = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_MXF = bytes.fromhex("060e2b34020501010d0102")  # a partition pack's key
_OGG_VIDEO = (b"\x80theora", b"\x01video", b"BBCD\x00", b"\x80daala")
_BMP_HEADERS = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_PREFIXES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"\x1a\x45\xdf\xa3", "matroska"),  # EBML: Matroska and WebM
    (_ASF, "asf"),
    (_MXF, "mxf"),
    (b"FLV\x01", "flv"),
    (b".RMF", "rm"),
    (b"\x00\x00\x01\xba", "mpegps"),  # a pack header: VOB, MPEG-1/2 program streams
    (b"\x00\x00\x01\xb3", "mpegvideo"),  # a sequence header: an MPEG-1/2 video stream
    (b"YUV4MPEG2", "yuv4mpegpipe"),
)


def sniff(head: bytes) -> str | None:
    """The format a file's first bytes (up to `SNIFF_BYTES`) announce: one of `PILLOW_FORMATS`
    for a still image, a container's name (`mp4`, `matroska`, `gif`, ...) for what FFmpeg
    opens, None for anything else (text, sound, unknown)."""
    for prefix, name in _PREFIXES:
        if head.startswith(prefix):
            return name
    if head[4:8] == b"ftyp":
        return _iso_brand(head)
    if head[:4] == b"RIFF":
        return {b"WEBP": "WEBP", b"AVI ": "avi", b"AVIX": "avi"}.get(head[8:12])
    if head[:2] == b"BM" and len(head) >= 18:
        if int.from_bytes(head[14:18], "little") in _BMP_HEADERS:
            return "BMP"
    if head[:4] == b"OggS":
        return "ogg" if any(codec in head for codec in _OGG_VIDEO) else None
    if head[:3] == b"\x1f\x07\x00" and len(head) > 3 and head[3] & 0x3F == 0x3F:
        return "dv"  # a DIF block header
    if _transport_stream(head):
        return "mpegts"
    if len(head) >= 8 and head[4:8] in _QUICKTIME_ATOMS and head[0] < 0x20:
        return "mov"  # an old QuickTime file without an ftyp box (a size, not text, comes first)
    return None


def _iso_brand(head: bytes) -> str | None:
    """An ISO base media file (MP4, MOV, 3GP, HEIF, AVIF) by the brands of its ftyp box."""
    size = int.from_bytes(head[:4], "big")
    major = head[8:12]
    compatible = {head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)}
    if major in _AVIF_BRANDS or (major in _HEIF_BRANDS and compatible & _AVIF_BRANDS):
        return "AVIF"
    if major in _HEIF_BRANDS:
        return "HEIF"
    if major in _NOT_VIDEO_BRANDS:
        return None
    return "mp4"


def _transport_stream(head: bytes) -> bool:
    """An MPEG transport stream: a sync byte every 188 bytes (or 192, for M2TS and AVCHD,
    whose packets carry a 4-byte time first), at least three times."""
    for packet, first in ((188, 0), (192, 4)):
        starts = range(first, len(head), packet)
        if len(starts) >= 3 and all(head[i] == 0x47 for i in starts):
            return True
    return False


def is_image(path: str | Path) -> bool:
    """Whether the image decoder, not the video decoders, takes this file: by its first bytes,
    whatever its name; by its name only when they say nothing (a file that cannot be read, a
    format nobody decodes: a fake `.jpg` is the image decoder's to refuse). Cheap (one small
    read) and never raises."""
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except (OSError, ValueError):
        head = b""
    found = sniff(head)
    if found is None:
        return Path(path).suffix.lower() in IMAGE_EXTENSIONS
    return found in PILLOW_FORMATS


# Decoding ---------------------------------------------------------------------------------------


class ImageSource:
    """The decode-backend interface (`info`, `stream_index`, `frames`) for one still image.

    The probe decodes every pixel (a truncated file fails here, not later) but keeps none of
    them; each `frames` call decodes the file again, perhaps in another process
    (`reopened_image`)."""

    backend = IMAGE_BACKEND

    def __init__(self, path: Path):
        self._path = Path(path)
        with _opened(self._path) as image, _decoding():
            image.load()
            width, height = _upright_size(image)
        self.info = VideoInfo(1, 0.0, 0.0, int(width), int(height), IMAGE_BACKEND)
        zero = np.zeros(1, dtype=np.int64)
        self.stream_index = StreamIndex(np.zeros(1), zero, zero)

    def _decode(self) -> np.ndarray:
        """The image as RGB uint8 (H, W, 3), upright."""
        from PIL import ImageOps

        with _opened(self._path) as image, _decoding():
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            return _to_array(_to_rgb(image))

    def frames(self, chunk) -> Iterator[tuple[int, np.ndarray]]:
        if 0 in chunk.indices:
            yield 0, self._decode()

    def read(self, indices: np.ndarray) -> np.ndarray:
        frame = self._decode()
        return np.repeat(frame[None], len(indices), axis=0)


def reopened_image(path: str | Path) -> ImageSource:
    """An image source for a decode worker: the probe already checked the file."""
    source = ImageSource.__new__(ImageSource)
    source._path = Path(path)
    return source


@contextmanager
def _opened(path: Path):
    """The image opened by the one decoder its first bytes name, not decoded yet, and set to
    decode within `PIXEL_BUDGET`.

    The decoder is called directly, not through `Image.open`: a library may wrap `Image.open`
    to fetch plugins for files Pillow cannot identify (the ultralytics HEIF hook runs pip), and
    that must never start, neither for a fake `.jpg` nor for a JPEG whose header is damaged."""
    name = _check_header(path)
    decoder = _decoder(name)
    with open(path, "rb") as fp:
        with _decoding():
            try:
                image = decoder(fp, str(path))
            except (SyntaxError, IndexError, TypeError, struct.error) as exc:
                raise VideoError("unreadable", f"not a valid {name} image ({exc})") from None
        try:
            _fit_budget(image)
            yield image
        finally:
            image.close()


def _check_header(path: Path) -> str:
    """The allowed decoder the file's first bytes name; refused before any decoder sees it."""
    try:
        with open(path, "rb") as f:
            name = sniff(f.read(SNIFF_BYTES))
    except OSError as exc:
        raise VideoError("unreadable", exc.strerror or str(exc)) from None
    if name not in PILLOW_FORMATS:
        raise VideoError("unreadable", f"not an image ({', '.join(PILLOW_FORMATS)})")
    return name


def _decoder(name: str):
    """The Pillow plugin class (or factory) that opens `name` images."""
    from PIL import Image

    Image.init()  # registers every bundled decoder (preinit leaves WebP, TIFF and AVIF out)
    if name == "HEIF" and name not in Image.OPEN:
        _register_heif()
    if name not in Image.OPEN:  # only HEIF has a decoder that may be missing
        raise VideoError("unreadable", "a HEIF image, and pillow-heif (its decoder) is missing")
    return Image.OPEN[name][0]


def _register_heif() -> None:
    """pillow-heif's decoder registered with Pillow: a compiled libheif, nothing fetched. Only
    the primary picture is read (no thumbnails, depth or auxiliary images), on this thread (the
    decode workers are the parallelism). libheif applies the file's own turns and mirrors and
    pillow-heif then clears the EXIF orientation, so a picture is never turned twice."""
    try:
        import pillow_heif
    except ImportError:
        return
    pillow_heif.register_heif_opener(
        thumbnails=False, depth_images=False, aux_images=False, decode_threads=1
    )


@contextmanager
def _decoding():
    """Decoder errors as ledger reasons."""
    from PIL import Image

    try:
        yield
    except Image.DecompressionBombError as exc:
        raise VideoError("unreadable", f"refused as a decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError, struct.error) as exc:  # truncated or corrupt
        raise VideoError("decode_error", f"cannot decode the image ({exc})") from None


def _fit_budget(image) -> None:
    """Leave an image within `PIXEL_BUDGET` as it is; have a bigger baseline JPEG decode
    reduced; refuse any other. A progressive JPEG is refused too: its decoder holds every
    coefficient of the whole picture whatever the scale (3 bytes a pixel and more)."""
    width, height = image.size
    pixels = width * height
    if pixels <= PIXEL_BUDGET:
        return
    megapixels = f"image of {_megapixels(pixels)} MP ({width}x{height})"
    budget = f"the {_megapixels(PIXEL_BUDGET)} MP decode budget"
    if image.format in ("JPEG", "MPO") and image.info.get("progressive"):
        raise VideoError("unreadable", f"progressive JPEG {megapixels} is above {budget}")
    scale = next((s for s in (2, 4, 8) if -(-width // s) * -(-height // s) <= PIXEL_BUDGET), None)
    # draft decodes at the largest scale keeping the size asked for: (w // s, h // s) gets 1/s.
    if scale is None or image.draft(None, (width // scale, height // scale)) is None:
        raise VideoError("unreadable", f"{megapixels} is above {budget}")


def _megapixels(pixels: int) -> str:
    mp = pixels / 1e6
    return f"{mp:,.0f}" if mp >= 10 else f"{mp:.3g}"


def _upright_size(image) -> tuple[int, int]:
    """(width, height) once EXIF orientation is applied (as `ImageOps.exif_transpose` does)."""
    orientation = image.getexif().get(0x0112, 1)
    width, height = image.size
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _to_rgb(image):
    """The picture as an 8-bit RGB Pillow image (the module docstring says how)."""
    from PIL import Image

    if image.mode == "RGB":
        return image
    if image.mode == "F" or image.mode.startswith("I"):
        image = _to_gray8(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        black = Image.new("RGB", rgba.size)
        black.paste(rgba, mask=rgba)  # round(colour * alpha / 255): opaque pixels unchanged
        return black
    try:
        return image.convert("RGB")
    except ValueError:
        raise VideoError("unreadable", f"an image in mode {image.mode}, not shown as RGB") from None


def _to_gray8(image):
    """A 16- or 32-bit integer or a float grayscale picture as 8-bit: integers keep the top 8
    bits of their depth (16-bit `v >> 8`, as Pillow does for 16-bit RGB; a signed sample's
    depth leaves out its sign bit), negatives black; floats are read on [0, 1] when none is
    above 1, else on [0, 255], rounded and clipped (NaN black)."""
    from PIL import Image

    values = np.asarray(image)
    if image.mode == "F":
        finite = values[np.isfinite(values)]
        scale = 255.0 if finite.size == 0 or finite.max() <= 1.0 else 1.0
        gray = np.clip(np.nan_to_num(np.rint(values * scale), nan=0.0), 0, 255)
    else:
        bits = _bit_depth(image)
        top = min((1 << bits) - 1, int(np.iinfo(values.dtype).max))
        gray = np.clip(values, 0, top) >> (bits - 8)
    return Image.fromarray(gray.astype(np.uint8))


def _bit_depth(image) -> int:
    """Bits of magnitude a sample of an integer picture holds: the TIFF's BitsPerSample (a
    12-bit scan stored in 16), less the sign bit where SampleFormat says signed; else the
    mode's."""
    tags = getattr(image, "tag_v2", None)
    bits, signed = (_first(tags.get(258)), _first(tags.get(339)) == 2) if tags else (None, False)
    if isinstance(bits, int) and 8 < bits <= 32:
        return bits - 1 if signed else bits
    return 16 if image.mode.startswith("I;16") else 32


def _first(value):
    return value[0] if isinstance(value, tuple) and value else value


def _to_array(rgb) -> np.ndarray:
    """An RGB Pillow image as a (H, W, 3) uint8 array. A big one is copied in bands of
    `BAND_BYTES`: `np.asarray` alone would hold its bytes twice over while joining them."""
    width, height = rgb.size
    rows = max(1, BAND_BYTES // (3 * max(1, width)))
    if height <= rows:
        return np.asarray(rgb)
    out = np.empty((height, width, 3), dtype=np.uint8)
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        out[top:bottom] = np.asarray(rgb.crop((0, top, width, bottom)))
    return out
