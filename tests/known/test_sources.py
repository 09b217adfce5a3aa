"""Where hashes come from (harmcache/known/sources.py): the pdq family read as the extractor
wrote it, the family chosen by name when a cache holds several, folders expanded, and a file's
id taken from the cache's memo when it is unchanged."""

from __future__ import annotations

import os

import numpy as np
import pytest

from harmcache.errors import CacheError, UsageError
from harmcache.extractors import pdq as pdq_extractor
from harmcache.known import pdq, sources
from harmcache.known.sources import (
    cached_hashes,
    expand_sources,
    media_entry,
    pdq_family,
    video_ids_of,
)
from harmcache.store.cache import FeatureCache
from tests.known.media import picture, save_picture, scene_video
from tests.running import invoke, ok


def test_the_extras_read_are_the_ones_the_extractor_writes():
    assert sources.QUALITY_EXTRA == pdq_extractor.QUALITY
    assert sources.DIHEDRAL_EXTRA == pdq_extractor.DIHEDRAL
    assert sources.PDQ_EXTRACTOR == pdq_extractor.PdqExtractor.name


def test_a_cached_video_reads_back_as_hash_video_hashes_it(tmp_path):
    video = scene_video(tmp_path / "v.mp4", [1, 2, 3])
    image = save_picture(tmp_path / "p.png", picture(4, 120, 160))
    ok("extract", video, image, "--out", tmp_path / "cache", "--extractors", "pdq",
       "--workers", "0")  # fmt: skip
    with FeatureCache(tmp_path / "cache") as store:
        family = pdq_family(store)
        read = {c.source_path: c for c in cached_hashes(store, family)}
        ids = video_ids_of(store, [video, image])
    cached, direct = read[str(video.absolute())], pdq.hash_video(video)
    np.testing.assert_array_equal(cached.hashes.hashes, direct.hashes)
    np.testing.assert_array_equal(cached.hashes.times, direct.times)
    np.testing.assert_array_equal(cached.hashes.quality, direct.quality)
    assert cached.dihedral.shape == (0, 32) and cached.entry().variant.tolist() == [0, 0, 0]
    # A still image comes with its turns and mirrors, as `bank add` hashes them from the file.
    picture_entry = read[str(image.absolute())].entry()
    np.testing.assert_array_equal(picture_entry.hashes, media_entry(image).hashes)
    assert picture_entry.variant.tolist() == list(range(8))
    assert ids == {video: cached.video_id, image: read[str(image.absolute())].video_id}


def test_a_changed_file_is_hashed_again_not_taken_from_the_memo(tmp_path):
    video = scene_video(tmp_path / "v.mp4", [1, 2])
    ok("extract", video, "--out", tmp_path / "cache", "--extractors", "pdq", "--workers", "0")
    scene_video(tmp_path / "v.mp4", [5, 6])
    os.utime(video, ns=(1, 1))
    with FeatureCache(tmp_path / "cache") as store:
        (new_id,) = video_ids_of(store, [video]).values()
        assert new_id not in store.committed(pdq_family(store))


def test_several_pdq_families_are_told_apart_by_name(tmp_path):
    video = scene_video(tmp_path / "v.mp4", [1, 2])
    cache = tmp_path / "cache"
    for fps in ("1", "2"):
        ok("extract", video, "--out", cache, "--extractors", "pdq", "--pdq-fps", fps,
           "--workers", "0")  # fmt: skip
    with FeatureCache(cache) as store:
        with pytest.raises(CacheError, match=r"has several pdq families \(pdq-\w+, pdq-\w+\)"):
            pdq_family(store)
        names = sorted(f.name for f in store.families())
        assert pdq_family(store, names[0]).name == names[0]
        with pytest.raises(CacheError, match=r"no pdq family 'pdq-nope'"):
            pdq_family(store, "pdq-nope")
    ok("bank", "add", tmp_path / "bank", video)
    failed = invoke("match", "--cache", cache, "--bank", tmp_path / "bank")
    assert failed.exit_code == 4 and "several pdq families" in failed.output
    chosen = ok("match", "--cache", cache, "--bank", tmp_path / "bank", "--family", names[0])
    assert "1 of 1 input(s) hold known content" in chosen.output


def test_folders_are_searched_for_media_and_hash_files(tmp_path):
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / ".hidden").mkdir()
    for name in ("b.mp4", "a.txt", "sub/c.png", "sub/d.csv", "notes.md", ".x.mp4", ".hidden/e.mp4"):
        (tmp_path / "in" / name).write_bytes(b"x")
    found = [p.relative_to(tmp_path / "in").as_posix() for p in expand_sources([tmp_path / "in"])]
    assert found == ["a.txt", "b.mp4", "sub/c.png", "sub/d.csv"]
    with pytest.raises(UsageError, match=r"no such file or folder: .*missing.mp4"):
        expand_sources([tmp_path / "missing.mp4"])
