"""Known content end to end, on real encoded media: `harmcache bank add`, `harmcache match` and
`harmcache cache duplicates`. A known 3-second clip is found inside a longer, rescaled and
re-encoded upload at the right time; a mirrored or turned copy of a known picture is found
through its dihedral hashes; unrelated videos match nothing; videos a cache's pdq family holds
are read from it, not decoded."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest

from harmcache.known import pdq
from harmcache.known.bank import HashBank
from harmcache.known.match import near_duplicate_clusters
from harmcache.store.cache import FeatureCache
from tests.known.media import picture, reencoded, save_picture, scene_video
from tests.running import invoke, last_json, ok

KNOWN_SCENES = [100, 101, 102]
"""The known clip: three one-second scenes."""
CLIP_AT = 5
"""Where the upload holds the clip: seconds 5 to 8 of 12."""


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    made = {
        "known": scene_video(folder / "known.mp4", KNOWN_SCENES),
        "other": scene_video(folder / "other.mp4", [200, 201, 202, 203]),
        "photo": save_picture(folder / "photo.png", picture(300, 240, 320)),
        "mirror": save_picture(folder / "mirror.jpg", picture(300, 240, 320)[:, ::-1]),
        "turned": save_picture(folder / "turned.png", np.rot90(picture(300, 240, 320))),
        "stranger": save_picture(folder / "stranger.png", picture(301, 240, 320)),
    }
    scenes = [1, 2, 3, 4, 5, *KNOWN_SCENES, 6, 7, 8, 9]
    lossless = scene_video(folder / "upload-lossless.mp4", scenes)
    made["upload"] = reencoded(lossless, folder / "upload.mp4")
    made["upload2"] = reencoded(lossless, folder / "upload2.mp4", size="160:120", crf=35)
    return made


@pytest.fixture(scope="module")
def bank(media, tmp_path_factory):
    path = tmp_path_factory.mktemp("banks") / "bank"
    ok("bank", "add", path, media["known"], media["photo"], "--label", "known")
    return path


def test_bank_add_hashes_videos_and_every_turn_and_mirror_of_a_picture(bank, media):
    table = HashBank(bank).table
    assert table.labels == ["known", "known"]
    video, image = table.entry(0), table.entry(1)
    # The first frame of each second and each frame where the picture changed (here the same:
    # one scene a second), each with its mirror and centre crops (harmcache/known/variants.py).
    own = video.variant == 0
    np.testing.assert_allclose(video.times[own], [0.0, 1.0, 2.0])
    assert sorted(set(video.variant.tolist())) == [pdq.VARIANTS.index(v) for v in (
        "original", "flip_y", "crop_95", "crop_90", "crop_85", "crop_70")]  # fmt: skip
    assert len(video) == 3 * 6
    np.testing.assert_array_equal(video.hashes[own], pdq.hash_video(media["known"]).hashes)
    assert image.variant.tolist() == list(range(8)) and image.times.tolist() == [0.0] * 8
    np.testing.assert_array_equal(image.hashes[0], pdq.hash_video(media["photo"]).hashes[0])
    result = ok("bank", "info", bank, "--json")
    info = last_json(result)
    assert (info["entries"], info["frames"], info["labels"]) == (2, 18 + 8, {"known": 2})


def test_a_known_clip_is_found_inside_a_longer_reencoded_upload_with_its_span(bank, media):
    result = ok("match", media["upload"], media["other"], "--bank", bank, "--json")
    report = last_json(result)
    assert report == {
        "queries": [
            {
                "path": str(media["upload"]),
                "matches": [
                    {
                        "label": "known",
                        "query_share": 3 / 12,
                        "bank_share": 1.0,
                        "spans": [[CLIP_AT, CLIP_AT + 3.0]],
                    }
                ],
            },
            {"path": str(media["other"]), "matches": []},
        ]
    }
    assert "1 of 2 input(s) hold known content" in result.output


@pytest.mark.parametrize("name", ["mirror", "turned"])
def test_a_mirrored_or_turned_picture_is_found_through_its_dihedral_hashes(bank, media, name):
    (query,) = last_json(ok("match", media[name], "--bank", bank, "--json"))["queries"]
    assert [(m["label"], m["bank_share"]) for m in query["matches"]] == [("known", 1.0)]
    # Its own hash is far from the picture's: only a turned or mirrored variant matches.
    own = pdq.hash_video(media[name]).hashes
    assert pdq.hamming(own, pdq.hash_video(media["photo"]).hashes)[0, 0] > pdq.MATCH_DISTANCE


def test_distinct_media_match_nothing(bank, media):
    result = ok("match", media["other"], media["stranger"], "--bank", bank, "--json")
    assert all(q["matches"] == [] for q in last_json(result)["queries"])


def test_videos_in_the_cache_are_read_not_decoded(bank, media, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    ok("extract", media["upload"], media["other"], media["mirror"], "--out", cache,
       "--extractors", "pdq", "--workers", "0")  # fmt: skip
    decoded = []
    real = pdq.hash_video
    monkeypatch.setattr(pdq, "hash_video", lambda path, *a, **k: decoded.append(path) or real(
        path, *a, **k))  # fmt: skip

    result = ok("match", media["upload"], media["stranger"], "--bank", bank, "--cache", cache,
                "--json")  # fmt: skip
    upload, stranger = last_json(result)["queries"]
    assert decoded == [media["stranger"]]  # the upload came from the cache
    assert upload["matches"][0]["spans"] == [[CLIP_AT, CLIP_AT + 3.0]]
    assert stranger["matches"] == []

    everything = last_json(ok("match", "--cache", cache, "--bank", bank, "--json"))["queries"]
    assert len(decoded) == 1
    found = {q["path"]: [m["label"] for m in q["matches"]] for q in everything}
    assert found == {str(media["upload"]): ["known"], str(media["other"]): [],
                     str(media["mirror"]): ["known"]}  # fmt: skip

    # The same cache fills a bank without decoding; the ids are the files' own.
    added = last_json(ok("bank", "add", tmp_path / "b2", "--from-cache", cache, "--json"))
    assert added["added"] == 3 and decoded == [media["stranger"]]
    again = last_json(ok("bank", "add", tmp_path / "b2", media["upload"], "--json"))
    assert (again["added"], again["skipped"]) == (0, 1)


def test_near_duplicates_in_a_cache_are_clustered(media, tmp_path):
    cache = tmp_path / "cache"
    copy = shutil.copy(media["upload"], tmp_path / "same-bytes.mp4")
    inputs = [media[n] for n in ("upload", "upload2", "other", "photo", "mirror", "stranger")]
    ok("extract", *inputs, copy, "--out", cache, "--extractors", "pdq", "--workers", "0")
    with FeatureCache(cache) as store:
        clusters = near_duplicate_clusters(store)
        ids = {path: vid for path, vid in store.sources().items()}
    by_id = {ids[str(media[n].absolute())]: n for n in ("upload", "upload2", "photo", "mirror")}
    assert sorted(sorted(by_id[v] for v in c) for c in clusters) == [
        ["mirror", "photo"], ["upload", "upload2"]
    ]  # fmt: skip
    report = last_json(ok("cache", "duplicates", cache, "--json"))
    assert len(report["clusters"]) == 2
    uploads = next(c for c in report["clusters"] if len(c[0]["paths"]) + len(c[1]["paths"]) == 3)
    assert sorted(p for v in uploads for p in v["paths"]) == sorted(
        str(p.absolute()) for p in (media["upload"], media["upload2"], copy)
    )
    assert "2 cluster(s) of near-duplicate videos" in ok("cache", "duplicates", cache).output
    strict = last_json(ok("cache", "duplicates", cache, "--distance", "8", "--json"))
    assert [len(c) for c in strict["clusters"]] == [2]  # the re-encodings are 12+ bits apart


def test_a_file_that_cannot_be_hashed_is_reported_and_the_rest_still_done(bank, media, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200)
    result = invoke("match", broken, media["upload"], "--bank", bank, "--json")
    assert result.exit_code == 1
    assert f"error: cannot hash {broken}" in result.output
    first, second = last_json(result)["queries"]
    assert first["matches"] == [] and "error" in first and len(second["matches"]) == 1
    added = invoke("bank", "add", tmp_path / "b", broken, media["known"], "--json")
    assert added.exit_code == 1 and "1 file(s) could not be hashed" in added.output
    assert len(HashBank(tmp_path / "b")) == 1


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["match", "{video}", "--bank", "{tmp}"], 4, r"is not a hash bank"),
        (["match", "--bank", "{bank}"], 2, r"nothing to match: give videos or images"),
        (
            ["match", "{video}", "--bank", "{bank}", "--bank-share", "2"],
            2,
            r"--bank-share must be above 0 and at most 1, got 2",
        ),  # fmt: skip
        (["match", "{video}", "--bank", "{bank}", "--cache", "{tmp}"], 4, r"is not a harmcache"),
        (["bank", "add", "{tmp}/new"], 2, r"nothing to add"),
        (["bank", "add", "{tmp}/new", "{tmp}/missing.mp4"], 2, r"no such file or folder"),
        (["bank", "info", "{tmp}"], 4, r"is not a hash bank"),
        (["cache", "duplicates", "{tmp}/cache"], 4, r"has no pdq family"),
        (["cache", "duplicates", "{tmp}/cache", "--share", "0"], 2, r"--share must be above 0"),
    ],
)
def test_mistakes_end_with_one_line_and_an_exit_code(bank, media, tmp_path, args, code, message):
    (tmp_path / "cache").mkdir()
    FeatureCache(tmp_path / "cache", create=True).close()
    values = {"video": media["other"], "bank": bank, "tmp": tmp_path}
    result = invoke(*[a.format(**values) for a in args])
    assert result.exit_code == code, result.output
    assert re.search(message, result.output), result.output
    assert "Traceback" not in result.output
