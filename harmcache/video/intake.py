"""Turn command-line inputs (files, folders, list files) into an ordered list of video and
image paths."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from harmcache.errors import UsageError
from harmcache.video.image import IMAGE_EXTENSIONS, SNIFF_BYTES, sniff

# Containers and streams FFmpeg opens, by their usual names. A file named explicitly is always
# tried, whatever its name.
VIDEO_EXTENSIONS = frozenset(
    """.mp4 .m4v .f4v .mov .qt .3gp .3g2 .mkv .mk3d .webm .avi .divx .wmv .asf .flv .mpg .mpeg
    .mpe .m1v .m2v .vob .mod .tod .ts .m2t .mts .m2ts .ogv .mxf .dv .rm .rmvb .y4m .h264 .264
    .h265 .265 .hevc .nut .amv .gif""".split()
)
LIST_EXTENSIONS = frozenset({".csv", ".txt", ".lst"})
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | IMAGE_EXTENSIONS
"""What a folder is searched for by name: videos, and still images (one-frame items)."""
NOT_MEDIA_EXTENSIONS = LIST_EXTENSIONS | frozenset(
    """.json .jsonl .tsv .md .rst .html .htm .xml .yaml .yml .toml .ini .cfg .log .nfo .pdf
    .doc .docx .xls .xlsx .ppt .pptx .odt .py .pyc .ipynb .sh .js .css .c .h .exe .dll .so
    .zip .tar .gz .tgz .bz2 .xz .zst .7z .rar .npy .npz .pt .pth .ckpt .onnx .h5 .hdf5 .pkl
    .parquet .db .sqlite .srt .vtt .ass .ssa .sub .idx .m3u .m3u8 .cue .sfv .md5 .sha1 .sha256
    .mp3 .wav .flac .aac .m4a .m4b .opus .wma .aiff .aif .mka .mid .midi .ac3 .dts .svg .ico
    .psd .xmp .cr2 .cr3 .nef .arw .dng .orf .rw2 .raf""".split()
)
"""Names a folder search passes by without reading the file: text, lists (a list file inside a
folder is never read as a list), data, archives, sound, subtitles, camera raw files (Pillow
would read only their embedded preview). Any other name the search does not know is decided by
the file's first bytes (`sniff`)."""


def expand_inputs(inputs: list[str | Path]) -> list[Path]:
    """Files as given, folders searched recursively (sorted), list files read line by line.

    Paths that do not exist are kept: the extractor records them as failures so that every
    input is accounted for in the summary. Order is stable and duplicates of a path are dropped.
    """
    if not inputs:
        raise UsageError("no inputs given: pass video files, folders or a .csv/.txt list of paths")
    seen: set[str] = set()
    out: list[Path] = []
    for raw in inputs:
        for path in _expand_one(Path(raw)):
            key = os.path.abspath(path)
            if key not in seen:
                seen.add(key)
                out.append(path)
    return out


def _expand_one(path: Path) -> list[Path]:
    if path.is_dir():
        return [Path(p) for p in _search(str(path))]
    if path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
        return read_path_list(path)
    return [path]


def _search(folder: str) -> list[str]:
    """The media under `folder`, recursively, sorted as paths sort (part by part), skipping
    hidden names and not following links to folders. Strings and `os.scandir`, whose entries
    know their type without a `stat`: a folder of a million files is one pass."""
    found: list[str] = []
    pending = [folder]
    while pending:
        where = pending.pop()
        try:
            entries = list(os.scandir(where))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)
            elif _is_media(entry):
                found.append(entry.path)
    found.sort(key=lambda p: p.split(os.sep))
    return found


def _is_media(entry: os.DirEntry) -> bool:
    """Whether a folder search keeps this entry: a file named like a video or an image; one
    whose name the search does not know and whose first bytes FFmpeg or the image decoder
    open; a link to nothing (kept, so the run records it as `missing`) or a file that cannot
    be read, unless its name says it is no media. Folders, pipes and sockets are passed by."""
    suffix = os.path.splitext(entry.name)[1].lower()
    if suffix in NOT_MEDIA_EXTENSIONS:
        return False
    try:
        is_file = entry.is_file()
    except OSError:
        is_file = False
    if not is_file:
        return entry.is_symlink() and not os.path.exists(entry.path)
    if suffix in MEDIA_EXTENSIONS:
        return True
    try:
        with open(entry.path, "rb") as f:
            return sniff(f.read(SNIFF_BYTES)) is not None
    except OSError:
        return True


def read_path_list(list_file: Path) -> list[Path]:
    """Paths from a text list (one per line) or a CSV whose first column (or `path`) holds them.

    Relative paths are taken relative to the list file's folder. A list that cannot be read is
    a UsageError: unlike a missing video, it leaves no input to account for.
    """
    try:
        text = list_file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"cannot read the list {list_file}: it is not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"cannot read the list {list_file}: {exc.strerror or exc}") from None
    rows: list[str]
    if list_file.suffix.lower() == ".csv":
        reader = csv.reader(text.splitlines())
        table = [r for r in reader if r and r[0].strip()]
        if table and "path" in [c.strip().lower() for c in table[0]]:
            column = [c.strip().lower() for c in table[0]].index("path")
            rows = [r[column] for r in table[1:] if len(r) > column]
        else:
            rows = [r[0] for r in table]
    else:
        rows = [line.strip() for line in text.splitlines()]
    rows = [r.strip() for r in rows if r.strip() and not r.strip().startswith("#")]
    return [p if p.is_absolute() else list_file.parent / p for p in map(Path, rows)]
