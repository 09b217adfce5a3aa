from pathlib import Path

import pytest

from harmcache.errors import UsageError
from harmcache.video.intake import expand_inputs


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
