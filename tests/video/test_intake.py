import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harmcache.errors import UsageError
from harmcache.extract.inputs import _stamp
from harmcache.video.decode import VideoSource
from harmcache.video.intake import expand_inputs
from tests.media_corpus import ffmpeg, need_ffmpeg


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folders_are_searched_recursively_for_every_container(tmp_path):
    names = [
        "a.mp4",
        "b/c.MKV",
        "b/d.webm",
        "e.avi",
        "f.mov",
        "g.m4v",
        "notes.txt",
        ".hidden/h.mp4",
    ]
    for n in names:
        touch(tmp_path / n)
    found = [p.relative_to(tmp_path).as_posix() for p in expand_inputs([tmp_path])]
    assert found == ["a.mp4", "b/c.MKV", "b/d.webm", "e.avi", "f.mov", "g.m4v"]


def test_a_folder_named_like_a_video_is_still_a_folder(tmp_path):
    inner = touch(tmp_path / "clips.mp4" / "real.mp4")
    assert expand_inputs([tmp_path / "clips.mp4"]) == [inner]


def test_list_files_csv_and_txt(tmp_path):
    a, b = touch(tmp_path / "v" / "a.mp4"), touch(tmp_path / "v" / "b.mp4")
    (tmp_path / "list.txt").write_text("# comment\nv/a.mp4\n\nv/b.mp4\n")
    (tmp_path / "list.csv").write_text("label,path\n1,v/b.mp4\n0,v/a.mp4\n")
    assert expand_inputs([tmp_path / "list.txt"]) == [a, b]
    assert expand_inputs([tmp_path / "list.csv"]) == [b, a]


def test_explicit_files_are_kept_even_if_missing_and_deduplicated(tmp_path):
    a = touch(tmp_path / "a.bin")
    assert expand_inputs([a, tmp_path / "gone.mp4", a]) == [a, tmp_path / "gone.mp4"]


def test_no_inputs_is_a_usage_error():
    with pytest.raises(UsageError, match="no inputs given"):
        expand_inputs([])


# Folder search by name, then by content -------------------------------------------------------

BY_NAME = (
    ".vob .mxf .3g2 .asf .m2ts .mts .ogv .dv .f4v .rm .rmvb .divx .m2v .mod .tod .y4m .m4v .qt"
    " .jfif .jpe .heic .heif .hif .avif .tif .tiff .dib"
).split()


@pytest.mark.parametrize("suffix", BY_NAME + [s.upper() for s in BY_NAME[:6]])
def test_a_folder_search_finds_every_container_and_picture_by_name(tmp_path, suffix):
    """Named like media, a file is kept without being read (its contents here are one byte)."""
    found = touch(tmp_path / f"clip{suffix}")
    assert expand_inputs([tmp_path]) == [found]


CONTAINERS = {  # name: ffmpeg output options, for a 0.5-s test picture
    "mkv": ["-c:v", "libx264"],
    "webm": ["-c:v", "libvpx"],
    "avi": ["-c:v", "mpeg4"],
    "mp4": ["-c:v", "libx264"],
    "mov": ["-c:v", "mpeg4"],
    "3g2": ["-c:v", "mpeg4"],
    "ts": ["-c:v", "mpeg2video"],
    "m2ts": ["-c:v", "mpeg2video", "-f", "mpegts", "-mpegts_m2ts_mode", "1"],
    "vob": ["-c:v", "mpeg2video", "-f", "vob"],
    "m2v": ["-c:v", "mpeg2video", "-f", "mpeg2video"],
    "asf": ["-c:v", "wmv2"],
    "flv": ["-c:v", "flv"],
    "ogv": ["-c:v", "libtheora"],
    "mxf": ["-c:v", "mpeg2video"],
    "rm": ["-c:v", "rv10"],
    "y4m": ["-pix_fmt", "yuv420p"],
}


@pytest.fixture(scope="module")
def containers(tmp_path_factory) -> dict[str, Path]:
    """One real file per container, written by the ffmpeg CLI."""
    need_ffmpeg()
    folder = tmp_path_factory.mktemp("containers")
    out = {}
    for name, options in CONTAINERS.items():
        out[name] = folder / f"a.{name}"
        source = ["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=0.5"]
        ffmpeg(*source, *options, out[name])
    return out


def _picture(path: Path, fmt: str) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, size=(16, 24, 3), dtype=np.uint8)
    if fmt == "HEIF":
        pillow_heif = pytest.importorskip("pillow_heif")
        pillow_heif.from_pillow(Image.fromarray(rgb)).save(path)
    else:
        Image.fromarray(rgb).save(path, format=fmt)


@pytest.mark.parametrize("unknown", ["", ".dat", ".bin", ".download", ".1"])
def test_a_folder_search_reads_unknown_names_by_their_first_bytes(tmp_path, containers, unknown):
    """A file whose name says nothing is kept when FFmpeg or the image decoder opens its
    first bytes, and the decoder it goes to opens it."""
    folder = tmp_path / "in"
    kept = []
    for name, source in containers.items():
        kept.append(shutil.copy(source, touch(folder / f"{name}_video{unknown}")))
    for fmt in ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "AVIF", "HEIF", "GIF"):
        path = folder / f"{fmt.lower()}_picture{unknown}"
        _picture(path, fmt)
        kept.append(path)
    (folder / f"README{unknown}").write_text("Use free software: notes, not a video\n")
    (folder / f"blob{unknown}").write_bytes(bytes(range(256)) * 8)
    (folder / f"empty{unknown}").write_bytes(b"")
    (folder / f"sound{unknown}").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(32))
    found = expand_inputs([folder])
    assert found == sorted(Path(p) for p in kept)
    for path in found:
        with VideoSource(path) as source:
            assert source.read([0]).shape[0] == 1, path


@pytest.mark.parametrize("suffix", [".txt", ".json", ".csv", ".md", ".py", ".lst", ".npy"])
def test_a_folder_search_passes_by_non_media_names_unread(tmp_path, containers, suffix):
    """A name that says no media is left out whatever the bytes: a list file inside a folder
    is never read as a list."""
    video = touch(tmp_path / "v" / "a.mp4")
    shutil.copy(containers["mp4"], tmp_path / f"misnamed{suffix}")
    (tmp_path / f"list{suffix}").write_text("v/a.mp4\nelsewhere/b.mp4\n")
    assert expand_inputs([tmp_path]) == [video]


def test_a_dangling_link_in_a_folder_is_kept_to_be_recorded_missing(tmp_path):
    os.symlink(tmp_path / "deleted-long-ago.mp4", tmp_path / "dangling.mp4")
    os.symlink(tmp_path / "gone", tmp_path / "dangling_no_name")
    os.symlink(tmp_path / "gone.txt", tmp_path / "notes.txt")  # named as no media: left out
    os.symlink(tmp_path / "gone.mp4", tmp_path / ".hidden.mp4")
    real = touch(tmp_path / "real.mp4")
    os.symlink(real, tmp_path / "linked.mp4")
    found = expand_inputs([tmp_path])
    names = ["dangling.mp4", "dangling_no_name", "linked.mp4", "real.mp4"]
    assert found == [tmp_path / n for n in names]
    stamp, error = _stamp(tmp_path / "dangling.mp4")
    assert stamp is None and error.reason == "missing"


def test_a_folder_search_passes_by_pipes_and_hidden_entries_unread(tmp_path, containers):
    os.mkfifo(tmp_path / "pipe")  # reading it would block the search
    os.mkfifo(tmp_path / "pipe.mp4")
    shutil.copy(containers["mp4"], touch(tmp_path / ".cache" / "clip"))
    shutil.copy(containers["mp4"], tmp_path / ".clip")
    shutil.copy(containers["mp4"], tmp_path / "clip")
    assert expand_inputs([tmp_path]) == [tmp_path / "clip"]


def test_a_folder_search_is_sorted_and_deduplicated(tmp_path, containers):
    for name in ("c", "a.mp4", "b/d"):
        shutil.copy(containers["mkv"], touch(tmp_path / name))
    once = [tmp_path / "a.mp4", tmp_path / "b" / "d", tmp_path / "c"]
    assert expand_inputs([tmp_path, tmp_path / "c", tmp_path]) == once
