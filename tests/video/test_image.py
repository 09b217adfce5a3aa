"""Still images as people keep them: told from videos by their bytes whatever their name, in
every format the image decoder takes (TIFF, AVIF, HEIC beside JPEG, PNG, WebP, BMP), every
Pillow mode turned into the right 8-bit RGB, and decoded within the pixel budget.
Folder search is in tests/video/test_intake.py; hostile images in tests/cli/test_extract.py."""

from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from harmcache.errors import VideoError
from harmcache.video import image as image_module
from harmcache.video.chunks import plan_chunks
from harmcache.video.decode import VideoSource, reopen
from harmcache.video.encode import write_video
from harmcache.video.image import ImageSource, is_image, sniff

pillow_heif = pytest.importorskip("pillow_heif")


def picture(h: int = 24, w: int = 40, seed: int = 0) -> np.ndarray:
    """A seeded texture with a red top-left corner, so a wrong turn or mirror shows."""
    rgb = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    rgb[: h // 3, : w // 4] = (255, 0, 0)
    return rgb


def smooth(h: int = 48, w: int = 80) -> np.ndarray:
    """A smooth picture (lossy codecs keep it close) with a red top-left corner."""
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // w, y * 255 // h, (x + y) * 127 // (w + h)], axis=-1)
    rgb[: h // 4, : w // 4] = (255, 0, 0)
    return rgb.astype(np.uint8)


def exif(orientation: int) -> bytes:
    tags = Image.Exif()
    tags[0x0112] = orientation
    return tags.tobytes()


def decode(path: Path) -> tuple[object, np.ndarray]:
    with VideoSource(path) as source:
        return source.info, source.read(np.array([0]))[0]


def jpeg_bytes(rgb: np.ndarray, orientation: int = 1, **options) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=95, exif=exif(orientation), **options)
    return buf.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims a size and holds one empty IDAT: the budget refuses it unread."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# Content decides, whatever the name ---------------------------------------------------------


@pytest.mark.parametrize("name", ["photo.jfif", "photo.jpe", "photo.bin", "photo.mp4", "photo"])
def test_a_jpeg_is_an_image_upright_whatever_its_name(tmp_path, name):
    """A phone photo (EXIF orientation 6: turn 90° clockwise to view), under any name."""
    stored = smooth()
    path = tmp_path / name
    path.write_bytes(jpeg_bytes(stored, orientation=6))
    assert is_image(path)
    info, frame = decode(path)
    assert info.backend == "image" and (info.width, info.height) == (48, 80)
    want = np.rot90(stored, -1)  # turned clockwise: the red corner goes top right
    assert frame.shape == want.shape
    assert np.abs(frame.astype(int) - want).mean() < 3.0


def _png(path: Path) -> None:
    Image.fromarray(picture()).save(path, format="PNG")


def _gif(path: Path) -> None:
    frames = [Image.fromarray(picture(seed=i)).convert("P") for i in range(3)]
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=100)


def _mp4(path: Path) -> None:
    frames = np.stack([picture(16, 32, seed=i) for i in range(4)])
    write_video(path.with_suffix(".tmp.mp4"), frames, fps=4).rename(path)


def _text(path: Path) -> None:
    path.write_text("<html>not a picture</html>\n")


@pytest.mark.parametrize(
    "write, name, image, backend",
    [
        (_png, "png_named.mp4", True, "image"),  # content wins
        (_png, "png_named.jpg", True, "image"),
        (_gif, "animation.jpg", False, "pyav"),  # FFmpeg decodes GIFs, with their frames
        (_gif, "animation.gif", False, "pyav"),
        (_mp4, "clip_named.jpg", False, "pyav"),
        (_mp4, "clip_named.png", False, "pyav"),
        (_text, "text.jpg", True, None),  # the bytes say nothing: the name decides
        (_text, "text.mp4", False, None),
    ],
)
def test_the_bytes_decide_image_or_video(tmp_path, write, name, image, backend):
    path = tmp_path / name
    write(path)
    assert is_image(path) is image
    if backend is None:
        with pytest.raises(VideoError, match="not an image|cannot open the container") as err:
            VideoSource(path)
        assert err.value.reason == "unreadable"
        return
    with VideoSource(path) as source:
        assert source.info.backend == backend
        assert source.read(np.array([0])).shape[0] == 1


@pytest.mark.parametrize(
    "name, image", [("gone.jpg", True), ("gone.HEIC", True), ("gone.mp4", False), ("gone", False)]
)
def test_a_file_that_cannot_be_read_is_judged_by_its_name(tmp_path, name, image):
    assert is_image(tmp_path / name) is image


def test_is_image_never_raises(tmp_path):
    assert is_image(tmp_path) is False  # a folder
    assert is_image("bad\0name.jpg") is True  # open() refuses the name: judged by it
    (tmp_path / "empty.png").write_bytes(b"")
    assert is_image(tmp_path / "empty.png") is True


@pytest.mark.parametrize(
    "head, want",
    [
        (b"\xff\xd8\xff\xe0" + b"\x00" * 12, "JPEG"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 8, "PNG"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WEBP"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "avi"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),  # sound
        (b"BM" + b"\x00" * 12 + struct.pack("<I", 40), "BMP"),
        (b"BM is not a bitmap, just text that starts so", None),
        (b"II*\x00\x08\x00\x00\x00", "TIFF"),
        (b"MM\x00*\x00\x00\x00\x08", "TIFF"),
        (b"II+\x00\x08\x00\x00\x00", "TIFF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIF"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "HEIF"),
        (b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00avifmif1", "AVIF"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1avif", "AVIF"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", "mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ", "mp4"),
        (b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A mp42", None),  # sound
        (b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat", "mov"),
        (b"Use free software for everything", None),
        (b"GIF89a\x10\x00", "gif"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81", "matroska"),
        (bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c"), "asf"),
        (bytes.fromhex("060e2b34020501010d01020101020400"), "mxf"),
        (b"FLV\x01\x05\x00\x00\x00\x09", "flv"),
        (b".RMF\x00\x00\x00\x12", "rm"),
        (b"\x00\x00\x01\xba\x44\x00\x04\x00", "mpegps"),
        (b"\x00\x00\x01\xb3\x14\x00\xf0\x13", "mpegvideo"),
        (b"YUV4MPEG2 W64 H48", "yuv4mpegpipe"),
        (b"\x1f\x07\x00\x3f" + b"\x00" * 12, "dv"),
        (b"OggS\x00\x02" + b"\x00" * 22 + b"\x80theora", "ogg"),
        (b"OggS\x00\x02" + b"\x00" * 22 + b"\x01vorbis", None),  # sound
        (b"".join(b"\x47" + bytes(187) for _ in range(5)), "mpegts"),
        (b"".join(bytes(4) + b"\x47" + bytes(187) for _ in range(5)), "mpegts"),  # M2TS
        (b"\x47" + bytes(187) + b"\x47", None),  # two packets are not a rhythm
        (b"", None),
        (b"plain text\n", None),
    ],
)
def test_sniff_names_the_format_by_its_first_bytes(head, want):
    assert sniff(head) == want


# Every format the image decoder takes --------------------------------------------------------


def _save(rgb: np.ndarray, path: Path, **options) -> Path:
    Image.fromarray(rgb).save(path, **options)
    return path


def _heic(rgb: np.ndarray, path: Path, orientation: int = 1) -> Path:
    heif = pillow_heif.from_pillow(Image.fromarray(rgb))
    heif.save(path, quality=95, exif=exif(orientation))
    return path


FORMATS = {
    # name: (writer, lossless)
    "png": (lambda rgb, d: _save(rgb, d / "a.png"), True),
    "bmp": (lambda rgb, d: _save(rgb, d / "a.bmp"), True),
    "webp_lossless": (lambda rgb, d: _save(rgb, d / "a.webp", lossless=True), True),
    "tif_raw": (lambda rgb, d: _save(rgb, d / "a.tif"), True),
    "tiff_lzw": (lambda rgb, d: _save(rgb, d / "a.tiff", compression="tiff_lzw"), True),
    "tiff_deflate": (
        lambda rgb, d: _save(rgb, d / "a.tiff", compression="tiff_adobe_deflate"),
        True,
    ),
    "bigtiff": (lambda rgb, d: _save(rgb, d / "a.tif", big_tiff=True), True),
    "jpeg": (lambda rgb, d: _save(rgb, d / "a.jpg", quality=95), False),
    "webp": (lambda rgb, d: _save(rgb, d / "a.webp", quality=95), False),
    "avif": (lambda rgb, d: _save(rgb, d / "a.avif", quality=95), False),
    "heic": (lambda rgb, d: _heic(rgb, d / "IMG_0001.HEIC"), False),
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format_decodes_to_its_pixels(tmp_path, fmt):
    write, lossless = FORMATS[fmt]
    rgb = picture() if lossless else smooth()
    path = write(rgb, tmp_path)
    assert is_image(path)
    info, frame = decode(path)
    assert (info.width, info.height, info.backend) == (rgb.shape[1], rgb.shape[0], "image")
    if lossless:
        np.testing.assert_array_equal(frame, rgb)
    else:
        assert np.abs(frame.astype(int) - rgb).mean() < 4.0


def _avif_turned(rgb, path):
    return _save(rgb, path.with_suffix(".avif"), exif=exif(6), quality=95)


def _tiff_turned(rgb, path):
    return _save(rgb, path.with_suffix(".tif"), tiffinfo={0x0112: 6})


def _heic_turned(rgb, path):
    return _heic(rgb, path.with_suffix(".heic"), orientation=6)  # written as the file's turn


@pytest.mark.parametrize("write", [_avif_turned, _tiff_turned, _heic_turned])
def test_a_turned_picture_is_decoded_upright_in_every_format(tmp_path, write):
    stored = smooth()
    path = write(stored, tmp_path / "turned")
    info, frame = decode(path)
    want = np.rot90(stored, -1)
    assert (info.width, info.height) == (want.shape[1], want.shape[0])
    assert frame.shape == want.shape
    assert np.abs(frame.astype(int) - want).mean() < 4.0


def test_no_file_goes_through_image_open(tmp_path, monkeypatch):
    """A library may wrap `Image.open` to fetch a plugin for a file Pillow cannot identify (the
    ultralytics HEIF hook runs pip): the image decoder never calls it, for good files or bad."""

    def refuse(*args, **kwargs):
        raise AssertionError("Image.open was called")

    monkeypatch.setattr(Image, "open", refuse)
    for fmt, (write, _) in FORMATS.items():
        folder = tmp_path / fmt
        folder.mkdir()
        decode(write(smooth(), folder))
    damaged = tmp_path / "damaged.jpg"
    damaged.write_bytes(b"\xff\xd8\xff" + bytes(64))  # a JPEG's first bytes, then nothing
    with pytest.raises(VideoError, match="not a valid JPEG image") as err:
        VideoSource(damaged)
    assert err.value.reason == "unreadable"
    fake = tmp_path / "fake.jpg"
    fake.write_text("not a picture\n")
    with pytest.raises(VideoError, match=r"not an image \(JPEG, PNG, WEBP, BMP, TIFF"):
        VideoSource(fake)


def test_heif_without_pillow_heif_is_a_clear_failure(tmp_path, monkeypatch):
    path = _heic(smooth(), tmp_path / "IMG_0003.HEIC")
    monkeypatch.delitem(Image.OPEN, "HEIF", raising=False)
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import fails
    with pytest.raises(VideoError, match="a HEIF image, and pillow-heif .* is missing") as err:
        VideoSource(path)
    assert err.value.reason == "unreadable"


def _half(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("fmt", ["png", "jpeg", "tif_raw", "tiff_lzw", "webp", "avif", "heic"])
def test_a_truncated_picture_fails_at_the_probe(tmp_path, fmt):
    path = _half(FORMATS[fmt][0](picture(64, 96), tmp_path))
    with pytest.raises(VideoError, match="cannot decode the image|not a valid") as err:
        ImageSource(path)
    assert err.value.reason in ("decode_error", "unreadable")


# Every Pillow mode as 8-bit RGB ----------------------------------------------------------------


def _today(path: Path) -> np.ndarray:
    """How an 8-bit picture was decoded before: every fingerprint in a cache hangs on it."""
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
@pytest.mark.parametrize(
    "fmt, options",
    [
        ("JPEG", {"quality": 90}),
        ("JPEG", {"quality": 80, "subsampling": 0}),
        ("PNG", {}),
        ("WEBP", {"quality": 80}),
        ("WEBP", {"lossless": True}),
        ("TIFF", {}),
    ],
)
def test_8bit_rgb_pixels_are_exactly_what_they_were(tmp_path, fmt, options, orientation):
    path = tmp_path / f"a.{fmt.lower()}"
    Image.fromarray(picture(33, 50)).save(path, format=fmt, exif=exif(orientation), **options)
    _, frame = decode(path)
    np.testing.assert_array_equal(frame, _today(path))


@pytest.mark.parametrize(
    "fmt, mode",
    [("PNG", "L"), ("PNG", "P"), ("PNG", "1"), ("BMP", "L"), ("BMP", "P"), ("BMP", "1")]
    + [("JPEG", "L"), ("TIFF", "1"), ("TIFF", "L"), ("WEBP", "L")],
)
def test_8bit_gray_palette_and_bilevel_are_what_they_were(tmp_path, fmt, mode):
    path = tmp_path / f"a.{fmt.lower()}"
    Image.fromarray(picture()).convert(mode).save(path, format=fmt)
    _, frame = decode(path)
    np.testing.assert_array_equal(frame, _today(path))
    if mode == "1":
        assert set(np.unique(frame)) <= {0, 255}


def gray3(values: np.ndarray) -> np.ndarray:
    return np.repeat(values.astype(np.uint8)[..., None], 3, axis=-1)


@pytest.mark.parametrize("fmt", ["png", "tif"])
def test_16bit_gray_keeps_its_top_byte(tmp_path, fmt):
    values = np.linspace(0, 65535, 24 * 40).reshape(24, 40).astype(np.uint16)
    path = tmp_path / f"gray16.{fmt}"
    Image.fromarray(values).save(path)
    with Image.open(path) as stored:
        assert stored.mode == "I;16"
    _, frame = decode(path)
    np.testing.assert_array_equal(frame, gray3(values >> 8))
    assert frame.max() == 255 and frame.min() == 0  # not all white, as convert("RGB") made it


def test_32bit_signed_integers_keep_the_top_byte_of_their_magnitude(tmp_path):
    values = np.linspace(-(2**20), 2**31 - 1, 24 * 40).reshape(24, 40).astype(np.int32)
    path = tmp_path / "gray32.tif"
    Image.fromarray(values).save(path)  # BitsPerSample 32, SampleFormat signed
    _, frame = decode(path)
    np.testing.assert_array_equal(frame, gray3(np.clip(values, 0, None) >> 23))
    assert frame.max() == 255


@pytest.mark.parametrize(
    "values, want",
    [
        ([0.0, 0.25, 0.5, 1.0], [0, 64, 128, 255]),  # normalised: read on [0, 1]
        ([0.0, 1.0, 100.4, 300.0], [0, 1, 100, 255]),  # above 1: read on [0, 255], clipped
        ([-0.5, np.nan, 0.5, 1.0], [0, 0, 128, 255]),  # negatives and NaN black
        ([np.inf, 2.0, 128.0, -np.inf], [255, 2, 128, 0]),
    ],
)
def test_float_pictures_by_their_range(tmp_path, values, want):
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([values], dtype=np.float32)).save(path)
    _, frame = decode(path)
    np.testing.assert_array_equal(frame, gray3(np.array([want])))


def test_cmyk_converts_as_printed(tmp_path):
    cmyk = np.array(
        [[[0, 0, 0, 0], [255, 0, 0, 0], [0, 255, 0, 0], [0, 0, 255, 0], [0, 0, 0, 255]]],
        dtype=np.uint8,
    )
    want = [[[255, 255, 255], [0, 255, 255], [255, 0, 255], [255, 255, 0], [0, 0, 0]]]
    path = tmp_path / "print.tif"
    Image.fromarray(cmyk, "CMYK").save(path)
    _, frame = decode(path)
    np.testing.assert_array_equal(frame, np.array(want, dtype=np.uint8))
    # A CMYK JPEG (stored inverted, as Adobe writes it) comes out as its picture.
    rgb = smooth()
    jpeg = tmp_path / "print.jpg"
    Image.fromarray(rgb).convert("CMYK").save(jpeg, quality=95)
    _, frame = decode(jpeg)
    assert np.abs(frame.astype(int) - rgb).mean() < 4.0


def over_black(rgba: np.ndarray) -> np.ndarray:
    colour, alpha = rgba[..., :3].astype(int), rgba[..., 3:].astype(int)
    return ((colour * alpha + 127) // 255).astype(np.uint8)


def with_alpha(h: int = 24, w: int = 40) -> np.ndarray:
    rgba = np.concatenate([picture(h, w), np.zeros((h, w, 1), np.uint8)], axis=-1)
    rgba[..., 3] = np.linspace(0, 255, w).astype(np.uint8)  # transparent left, opaque right
    return rgba


@pytest.mark.parametrize(
    "fmt, options", [("PNG", {}), ("WEBP", {"lossless": True, "exact": True}), ("TIFF", {})]
)
def test_transparency_is_composited_over_black(tmp_path, fmt, options):
    rgba = with_alpha()
    path = tmp_path / f"alpha.{fmt.lower()}"
    Image.fromarray(rgba, "RGBA").save(path, format=fmt, **options)
    _, frame = decode(path)
    np.testing.assert_array_equal(frame, over_black(rgba))
    assert not frame[:, 0].any()  # fully transparent: black, whatever colour is stored


@pytest.mark.parametrize("fmt, options", [("PNG", {}), ("WEBP", {"lossless": True}), ("TIFF", {})])
def test_an_opaque_alpha_picture_equals_its_rgb(tmp_path, fmt, options):
    rgb = picture()
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=-1)
    with_a, without = tmp_path / f"a.{fmt.lower()}", tmp_path / f"b.{fmt.lower()}"
    Image.fromarray(rgba, "RGBA").save(with_a, format=fmt, **options)
    Image.fromarray(rgb).save(without, format=fmt, **options)
    np.testing.assert_array_equal(decode(with_a)[1], decode(without)[1])
    np.testing.assert_array_equal(decode(with_a)[1], rgb)


def test_gray_with_alpha_is_composited_over_black(tmp_path):
    rgba = with_alpha()
    gray = np.asarray(Image.fromarray(rgba, "RGBA").convert("LA"))
    path = tmp_path / "gray_alpha.png"
    Image.fromarray(gray, "LA").save(path)
    _, frame = decode(path)
    want = (gray[..., 0].astype(int) * gray[..., 1] + 127) // 255
    np.testing.assert_array_equal(frame, gray3(want))


def test_a_palette_transparent_colour_is_black(tmp_path):
    palette = Image.fromarray(picture()).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    indices = np.asarray(palette)
    path = tmp_path / "palette_alpha.png"
    palette.save(path, transparency=0)
    _, frame = decode(path)
    colours = np.array(palette.getpalette("RGB"), dtype=np.uint8).reshape(-1, 3)
    want = colours[indices]
    want[indices == 0] = 0
    np.testing.assert_array_equal(frame, want)
    assert (indices == 0).any() and (indices != 0).any()


# The pixel budget ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(12000, 12000), (100000, 2000), (60000, 60000), (7072, 7071)])
def test_a_picture_above_the_budget_is_refused_from_its_header(tmp_path, size):
    path = tmp_path / "huge.png"
    path.write_bytes(png_header(*size))  # a few bytes claiming a huge picture: a bomb
    mp = f"{size[0] * size[1] / 1e6:,.0f}"
    match = rf"image of {mp} MP \({size[0]}x{size[1]}\) is above the 50 MP decode budget"
    with pytest.raises(VideoError, match=match) as err:
        VideoSource(path)
    assert err.value.reason == "unreadable"


@pytest.mark.parametrize("fmt", ["png", "bmp", "webp", "tif_raw", "avif", "heic"])
def test_formats_that_cannot_decode_reduced_are_refused_above_the_budget(
    tmp_path, monkeypatch, fmt
):
    monkeypatch.setattr(image_module, "PIXEL_BUDGET", 1000)
    path = FORMATS[fmt][0](smooth(), tmp_path)  # 3840 pixels
    with pytest.raises(VideoError, match=r"image of 0.00384 MP .* above the 0.001 MP decode"):
        VideoSource(path)


@pytest.mark.parametrize(
    "size, budget, scale", [((300, 200), 20_000, 2), ((300, 200), 10_000, 4), ((301, 199), 1000, 8)]
)
def test_a_jpeg_above_the_budget_decodes_reduced_and_upright(
    tmp_path, monkeypatch, size, budget, scale
):
    monkeypatch.setattr(image_module, "PIXEL_BUDGET", budget)
    width, height = size
    stored = cv2.resize(smooth(), (width, height), interpolation=cv2.INTER_LINEAR)
    path = tmp_path / "big.jpg"
    path.write_bytes(jpeg_bytes(stored, orientation=6))
    reduced = (-(-width // scale), -(-height // scale))
    info, frame = decode(path)
    assert (info.width, info.height) == (reduced[1], reduced[0])  # upright: turned 90°
    assert info.width * info.height <= budget
    assert frame.shape == (reduced[0], reduced[1], 3)
    want = np.rot90(cv2.resize(stored, reduced, interpolation=cv2.INTER_AREA), -1)
    assert np.abs(frame.astype(int) - want).mean() < 6.0
    # A decode worker in another process decodes the same reduced picture.
    source = reopen(path, info)
    chunk = plan_chunks(np.zeros(1, dtype=np.int64), ImageSource(path).stream_index, 1)[0]
    np.testing.assert_array_equal(next(iter(source.frames(chunk)))[1], frame)


def test_a_progressive_jpeg_above_the_budget_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(image_module, "PIXEL_BUDGET", 1000)
    path = tmp_path / "web.jpg"
    path.write_bytes(jpeg_bytes(smooth(), progressive=True))
    with pytest.raises(VideoError, match="progressive JPEG image of 0.00384 MP") as err:
        VideoSource(path)
    assert err.value.reason == "unreadable"
    monkeypatch.setattr(image_module, "PIXEL_BUDGET", 50_000_000)
    assert decode(path)[1].shape == (48, 80, 3)  # within the budget, decoded whole


def test_a_big_picture_is_copied_into_its_array_in_bands(monkeypatch, tmp_path):
    monkeypatch.setattr(image_module, "BAND_BYTES", 3 * 40 * 5)  # five rows a band
    rgb = picture(23, 40)
    path = _save(rgb, tmp_path / "a.png")
    np.testing.assert_array_equal(decode(path)[1], rgb)


def test_a_huge_png_costs_no_more_memory_than_an_hd_one(tmp_path):
    """Peak RSS (VmHWM of a fresh process) of the probe and `frames`: a 12000x12000 PNG, which
    Pillow cannot decode reduced, is refused from its header; a 3000x3000 one within the
    budget adds at most 12 bytes a pixel (Pillow's 4, the array's 3, one band and the
    decoder's buffers: 10 measured), not the 18 its copies once took."""
    from bench.image_memory_bench import measure, write_png

    hd = measure(write_png(tmp_path / "hd.png", 1920, 1080), "image_source")
    huge = measure(write_png(tmp_path / "huge.png", 12000, 12000), "image_source")
    assert hd["outcome"] == "decoded" and hd["shape"] == [1080, 1920, 3]
    assert huge["outcome"].startswith("unreadable: image of 144 MP")
    assert huge["peak_mb"] <= 1.5 * hd["peak_mb"], (huge, hd)
    big = measure(write_png(tmp_path / "big.png", 3000, 3000), "image_source")
    assert big["shape"] == [3000, 3000, 3]
    assert big["added_mb"] * 2**20 / (3000 * 3000) <= 12.0, big
