"""No traceback from any command: bad options, missing and empty paths, a file where a folder is
expected and the reverse, fresh and half-written caches, damaged run directories.

Each case runs the installed CLI in a subprocess, as a user would, and asserts the exit code that
docs/cli.md documents. Two shapes of failure are accepted, never a traceback:

- click rejects the command line itself (unknown option, bad value type, missing argument):
  exit 2 and its `Usage: harmcache ...` block on stderr;
- harmcache rejects it: exactly one `error: ...` line, the last line on stderr.

No case gets as far as loading a backbone: every one must fail before extraction starts. The
cases run side by side in a module fixture; each test asserts on one outcome.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from harmcache.cli.common import handle_errors, make_folder

from harmcache.errors import UsageError
from harmcache.extractors.base import ExtractSettings, WeightsSource, get_extractor
from harmcache.video.encode import write_video
from tests import synthetic_cache
from tests.conftest import coded_frames

# docs/cli.md, "Exit codes".
OK, FAILED, USAGE, WEIGHTS, CACHE, DATA = 0, 1, 2, 3, 4, 5

HARMCACHE = Path(sys.executable).with_name("harmcache")
ENV = {k: v for k, v in os.environ.items() if k != "HARMCACHE_WEIGHTS_DIR"} | {
    "YOLO_OFFLINE": "1",
    "HARMCACHE_OFFLINE": "1",
    "COLUMNS": "200",  # keeps click's error box on one line
}


@dataclass(frozen=True)
class Case:
    argv: str
    """The command line after `harmcache`; {name} stands for a path of the case (see NAMES)."""
    code: int
    match: str | None = None
    """A regular expression the error message must contain."""
    click: bool = False
    """Rejected by click's own parsing: a `Usage:` block rather than an `error:` line."""


def case(argv: str, code: int, match: str | None = None, *, click: bool = False, id: str = ""):
    return pytest.param(Case(argv, code, match, click), id=id or argv)


def cli_usage(argv: str, match: str, id: str = ""):
    return case(argv, USAGE, match, click=True, id=id)


ABSENT = "{missing}"
FILE = "{file}"
EMPTY = "{empty}"
TRAIN = "train --cache {cache} --labels {labels} --head logreg --out {new}"
EVALUATE = "evaluate {run}"
PREDICT = "predict --run {run} --cache {cache} --device cpu {missing}"
EXTRACT = "extract {video} --out {new}"
NOTHING_USABLE = "nothing usable|no usable|no videos|no inputs"

CASES = [
    # --- the app itself ------------------------------------------------------------------------
    cli_usage("nope", "No such command 'nope'"),
    cli_usage("--bogus", "No such option: --bogus"),
    # --- extract: options are checked before anything is read or written ----------------------
    cli_usage(f"{EXTRACT} --bogus", "No such option: --bogus"),
    cli_usage(f"{EXTRACT} --frames abc", "Invalid value for '--frames'"),
    cli_usage(f"{EXTRACT} --random-init --weights-dir", "requires an argument"),
    case(f"{EXTRACT} --frames 0", USAGE, "--frames must be at least 1"),
    case(f"{EXTRACT} --windows 0", USAGE, "--windows must be at least 1"),
    case(f"{EXTRACT} --batch-size 0", USAGE, "--batch-size must be at least 1"),
    case(f"{EXTRACT} --tta nope", USAGE, "--tta must be 'flip'"),
    case(f"{EXTRACT} --yolo-imgsz 100", USAGE, "--yolo-imgsz must be a multiple of 32"),
    case(f"{EXTRACT} --device tpu", USAGE, "--device must be auto, cpu or cuda"),
    case(f"{EXTRACT} --extractors nope", USAGE, "unknown extractor 'nope'"),
    case(f"{EXTRACT} --extractors ,", USAGE, "no extractors chosen"),
    case(f"{EXTRACT} --extractors clip,clip", USAGE, "named twice"),
    case(f"{EXTRACT} --random-init --weights-dir {{empty}}", USAGE, "exclude each other"),
    case(f"{EXTRACT} --random-init --shard-size 0", USAGE, "--shard-size must be at least 1"),
    case(f"{EXTRACT} --random-init --workers -1", USAGE, "--workers must be 0 or more"),
    case(f"{EXTRACT} --random-init --engine spark", USAGE, "--engine"),
    case("extract --out {new} --random-init", USAGE, "no inputs given"),
    # --- extract: weights, inputs, the output folder -------------------------------------------
    case("extract {video} --out {new}", WEIGHTS, "missing weights for yolo", id="extract-offline"),
    *[
        case(
            f"extract {{video}} --out {{new}} --extractors clip --weights-dir {where}",
            WEIGHTS,
            "ViT-B-32.pt is not in",
            id=f"extract-weights-dir-{name}",
        )
        for name, where in (("empty", EMPTY), ("missing", ABSENT), ("file", FILE))
    ],
    case(f"extract {ABSENT} --out {{new}} --random-init", USAGE, NOTHING_USABLE),
    case(f"extract {EMPTY} --out {{new}} --random-init", USAGE, NOTHING_USABLE),
    case("extract {folder_list} --out {new} --random-init", USAGE, NOTHING_USABLE),
    case("extract {binary_list} --out {new} --random-init", USAGE, "cannot read the list"),
    case(f"extract {{video}} --out {FILE} --random-init", USAGE, "is not a folder"),
    case("extract {video} --out {file}/sub --random-init", USAGE, "is not a folder"),
    case(f"extract {ABSENT} --out {{marker_only}} --random-init", USAGE, NOTHING_USABLE),
    case(f"extract {ABSENT} --out {{garbage_index}} --random-init", USAGE, NOTHING_USABLE),
    # --- cache ---------------------------------------------------------------------------------
    cli_usage("cache nope", "No such command 'nope'"),
    cli_usage("cache info", "Missing argument"),
    cli_usage("cache info {cache} --bogus", "No such option: --bogus"),
    cli_usage("cache gc {cache} --drop", "requires an argument"),
    *[
        case(f"cache {sub} {where}", CACHE, "is not a harmcache cache")
        for sub in ("info", "verify", "gc", "reindex", "migrate", "compact")
        for where in (ABSENT, EMPTY, FILE)
    ],
    # Only harmcache.json: a cache whose first writer died at once. It is empty, not broken.
    *[
        case(f"cache {sub} {{marker_only}}", OK)
        for sub in ("info", "verify", "gc", "reindex", "migrate", "compact")
    ],
    # index.sqlite is only a cache of the shards and logs: a damaged one is rebuilt, not fatal.
    *[
        case(f"cache {sub} {{garbage_index}}", OK)
        for sub in ("info", "verify", "gc", "reindex", "migrate", "compact")
    ],
    case("cache compact {cache} --shard-videos 1", USAGE, "--shard-videos must be at least 2"),
    case("cache verify {truncated_shard}", CACHE, r"\d+ problem"),
    case("cache info {garbage_family}", OK),
    case("cache verify {garbage_family}", CACHE, "1 problem"),  # the problem line names the file
    case("cache gc {garbage_family}", CACHE, "family.json"),
    case("cache gc {cache} --drop nope", CACHE, "no family 'nope'"),
    # --- weights -------------------------------------------------------------------------------
    cli_usage("weights nope", "No such command 'nope'"),
    cli_usage("weights download", "Missing argument"),
    cli_usage("weights list --bogus", "No such option: --bogus"),
    case(f"weights download {FILE}", USAGE, "is not a folder"),
    case("weights download {file}/sub", USAGE, "is not a folder: .* is a file"),
    case("weights download {new} --extractors nope", USAGE, "unknown extractor 'nope'"),
    case("weights download {new} --extractors ,", USAGE, "names no extractor"),
    case("weights download {new} --extractors yolo", WEIGHTS, "HARMCACHE_OFFLINE"),
    # --- demo-data -----------------------------------------------------------------------------
    cli_usage("demo-data", "Missing argument"),
    cli_usage("demo-data {new} --n-safe abc", "Invalid value for '--n-safe'"),
    case("demo-data {new} --n-safe 0", USAGE, "--n-safe must be at least 1"),
    case(f"demo-data {FILE}", USAGE, "cannot write the demo set .*Not a directory"),
    case("demo-data {file}/sub", USAGE, "cannot write the demo set .*Not a directory"),
    case("demo-data {labels_dir}", USAGE, "cannot write the demo set .*labels.csv"),
    # --- train ---------------------------------------------------------------------------------
    cli_usage("train", "Missing option"),
    cli_usage(f"{TRAIN} --bogus", "No such option: --bogus"),
    cli_usage(f"{TRAIN} --val-fraction abc", "Invalid value for '--val-fraction'"),
    case(f"{TRAIN} --head nope", USAGE, "nope"),
    case(f"{TRAIN} --param bogus", USAGE, "KEY=VALUE"),
    case(f"{TRAIN} --param nosuch=1", USAGE, "nosuch"),
    case(f"{TRAIN} --epochs 2", USAGE, "--epochs is not a setting of the logreg head"),
    case(f"{TRAIN} --val-fraction 1.5", USAGE, "--val-fraction"),
    case(f"{TRAIN} --features nope", DATA, "nope"),
    case(f"{TRAIN} --family nope", CACHE, "no family 'nope'"),
    *[
        case(f"{TRAIN} --split-from {where}", USAGE, "not a run directory|split")
        for where in (ABSENT, EMPTY, FILE)
    ],
    *[
        case(
            TRAIN.replace("{cache}", where),
            CACHE,
            "is not a harmcache cache",
            id=f"train-cache-{n}",
        )
        for n, where in (("missing", ABSENT), ("empty", EMPTY), ("file", FILE))
    ],
    case(TRAIN.replace("{cache}", "{marker_only}"), DATA, id="train-cache-marker-only"),
    case(TRAIN.replace("{cache}", "{truncated_shard}"), CACHE, id="train-cache-truncated-shard"),
    case(TRAIN.replace("{labels}", ABSENT), USAGE, "labels not found", id="train-labels-missing"),
    case(TRAIN.replace("{labels}", EMPTY), DATA, "no labels", id="train-labels-empty-folder"),
    case(TRAIN.replace("{labels}", "{empty_csv}"), DATA, "header", id="train-labels-empty-csv"),
    case(TRAIN.replace("{labels}", "{binary_csv}"), USAGE, "cannot read", id="train-labels-binary"),
    case(TRAIN.replace("{labels}", FILE), DATA, id="train-labels-not-a-table"),
    case(TRAIN.replace("{new}", FILE), USAGE, "already exists", id="train-out-file"),
    case(TRAIN.replace("{new}", "{file}/sub"), USAGE, "is not a folder", id="train-out-under-file"),
    case(TRAIN.replace("{new}", "{run}"), USAGE, "already exists", id="train-out-existing-run"),
    # --- sweep-threshold -----------------------------------------------------------------------
    case("sweep-threshold", USAGE, "give a run directory or --scores FILE.csv"),
    cli_usage("sweep-threshold {run} --bootstrap abc", "Invalid value for '--bootstrap'"),
    *[
        case(f"sweep-threshold {where}", USAGE, "not a run directory")
        for where in (ABSENT, EMPTY, FILE, "{cache}")
    ],
    case("sweep-threshold {run} --objective bogus", USAGE, "bogus"),
    case("sweep-threshold {run} --objective recall>=2", USAGE, "recall"),
    case("sweep-threshold {run} --grid abc", USAGE, "grid"),
    case("sweep-threshold {run} --grid 1:0:0.1", USAGE, "grid"),
    case("sweep-threshold {run} --bootstrap -1", USAGE, "--bootstrap"),
    case("sweep-threshold {run} --review-band x", USAGE, "--review-band"),
    case("sweep-threshold {run} --review-band 2,0.5", USAGE, "--review-band"),
    case("sweep-threshold {run_empty_scores}", DATA),
    case("sweep-threshold {run_garbage_scores}", USAGE, "val_scores.csv"),
    # --- evaluate ------------------------------------------------------------------------------
    cli_usage("evaluate", "Missing argument"),
    cli_usage(f"{EVALUATE} --bogus", "No such option: --bogus"),
    *[
        case(f"evaluate {where}", USAGE, "not a run directory")
        for where in (ABSENT, EMPTY, FILE, "{cache}")
    ],
    case("evaluate {run_no_head}", USAGE, "head"),
    case("evaluate {run_garbage_config}", USAGE, "config.json"),
    case("evaluate {run_garbage_head}", USAGE, "head.json"),
    case(f"{EVALUATE} --subset nope", USAGE, "--subset must be val or test"),
    case(f"{EVALUATE} --subset val --labels {{labels}}", USAGE, "exclude each other"),
    case(f"{EVALUATE} --subset nope", USAGE, "subset"),
    case(f"{EVALUATE} --labels {ABSENT}", USAGE, "labels not found"),
    case(f"{EVALUATE} --labels {EMPTY}", DATA, "no labels"),
    case(f"{EVALUATE} --labels {{labels}} --cache {ABSENT}", CACHE, "is not a harmcache cache"),
    case(f"{EVALUATE} --labels {{labels}} --cache {FILE}", CACHE, "is not a harmcache cache"),
    case(f"{EVALUATE} --labels {{labels}} --cache {{garbage_index}}", OK),
    case(f"{EVALUATE} --labels {{labels}} --cache {{truncated_shard}}", CACHE),
    # --- compare -------------------------------------------------------------------------------
    cli_usage("compare", "Missing argument"),
    *[
        case(f"compare {{run}} {where}", USAGE, "not a run directory")
        for where in (ABSENT, EMPTY, FILE)
    ],
    case("compare {run} {run_garbage_config}", USAGE, "config.json"),
    # --- predict: every case fails before a backbone is built ----------------------------------
    cli_usage("predict {video}", "Missing option '--run'"),
    cli_usage("predict --run {run}", "Missing argument"),
    cli_usage(f"{PREDICT} --segments abc", "Invalid value for '--segments'"),
    *[
        case(f"predict --run {where} {{video}}", USAGE, "not a run directory")
        for where in (ABSENT, EMPTY, FILE)
    ],
    case("predict --run {run_no_head} {video}", USAGE, "head"),
    case("predict --run {run_garbage_spec} {missing}", USAGE, "features.json|spec"),
    case(f"{PREDICT} --device tpu", USAGE, "--device"),
    case(f"{PREDICT} --segments -1", USAGE, "--segments"),
    case(PREDICT, USAGE, NOTHING_USABLE, id="predict-video-missing"),
    case(PREDICT.replace("{missing}", EMPTY), USAGE, NOTHING_USABLE, id="predict-video-empty-dir"),
    case(
        PREDICT.replace("{cache}", FILE).replace("{missing}", "{video}"),
        CACHE,
        id="predict-cache-file",
    ),
]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """Everything the cases point at (see NAMES) but the runs; each case works on a copy."""
    root = tmp_path_factory.mktemp("world")
    # Full-width features under the real extractors' specs: `cache verify` finds nothing wrong
    # with the undamaged cache, and a run trained on it can rebuild its extractors.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(synthetic_cache, "spec", real_spec)
        syn = synthetic_cache.build(root / "synthetic", 30, dims=synthetic_cache.FULL_DIMS)
    syn.cache.close()
    shutil.move(root / "synthetic" / "cache", root / "cache")
    shutil.move(root / "synthetic" / "labels.csv", root / "labels.csv")
    write_video(root / "clip.mp4", coded_frames(4))
    (root / "empty").mkdir()
    (root / "file.txt").write_text("not a folder\n")
    (root / "empty.csv").write_text("")
    (root / "binary.csv").write_bytes(b"\xff\xfe\x00\x81garbage")
    (root / "binary.txt").write_bytes(b"\xff\xfe\x00\x81garbage")
    (root / "folder.txt").mkdir()
    (root / "labels_dir" / "labels.csv").mkdir(parents=True)

    (root / "marker_only").mkdir()
    shutil.copy(root / "cache" / "harmcache.json", root / "marker_only")
    shutil.copytree(root / "cache", root / "garbage_index")
    (root / "garbage_index" / "index.sqlite").write_bytes(b"this is not a database\n" * 64)
    shutil.copytree(root / "cache", root / "truncated_shard")
    shard = sorted((root / "truncated_shard" / "features").glob("*/shard-*.h5"))[0]
    shard.write_bytes(shard.read_bytes()[:200])
    shutil.copytree(root / "cache", root / "garbage_family")
    meta = sorted((root / "garbage_family" / "features").glob("*/family.json"))[0]
    meta.write_text('{"extractor": "clip", "finger')
    return root


def real_spec(extractor: str, *, random_init: bool = True, seed: int = 0, frames: int = 8) -> dict:
    settings = ExtractSettings(frames=frames, windows=2, weights=WeightsSource(random_init=True))
    return get_extractor(extractor)(settings).spec()


@pytest.fixture(scope="module")
def runs(base) -> None:
    """A logreg run trained through the CLI, and damaged copies of it, beside the cache."""
    trained = harmcache(
        base, "train", "--cache", "cache", "--labels", "labels.csv", "--head", "logreg", "--out",
        "run",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    run = base / "run"
    damage = {
        "run_no_head": lambda d: shutil.rmtree(d / "head"),
        "run_garbage_config": lambda d: (d / "config.json").write_text("{not json"),
        "run_garbage_head": lambda d: (d / "head" / "head.json").write_text("{not json"),
        "run_garbage_spec": lambda d: (d / "features.json").write_text(
            (run / "features.json").read_text().replace('"batch_size"', '"batch_sighs"')
        ),
        "run_empty_scores": lambda d: (d / "val_scores.csv").write_text(""),
        "run_garbage_scores": lambda d: (d / "val_scores.csv").write_text("a,b\n1,2\n"),
    }
    for name, spoil in damage.items():
        shutil.copytree(run, base / name)
        spoil(base / name)


NAMES = {
    "missing": "does-not-exist",
    "new": "new",
    "empty": "empty",
    "file": "file.txt",
    "video": "clip.mp4",
    "labels": "labels.csv",
    "empty_csv": "empty.csv",
    "binary_csv": "binary.csv",
    "binary_list": "binary.txt",
    "folder_list": "folder.txt",
    "labels_dir": "labels_dir",
    "cache": "cache",
    "marker_only": "marker_only",
    "garbage_index": "garbage_index",
    "truncated_shard": "truncated_shard",
    "garbage_family": "garbage_family",
    "run": "run",
    "run_no_head": "run_no_head",
    "run_garbage_config": "run_garbage_config",
    "run_garbage_head": "run_garbage_head",
    "run_garbage_spec": "run_garbage_spec",
    "run_empty_scores": "run_empty_scores",
    "run_garbage_scores": "run_garbage_scores",
}
"""Placeholder in a case → its path in the case's copy of `base`."""


@pytest.fixture(scope="module")
def outcomes(request, base, tmp_path_factory) -> dict[Case, subprocess.CompletedProcess]:
    """Every selected case, run on its own copies of the paths it names, so that none sees
    another's writes.

    They run side by side, one per core: each spends most of its second or two importing."""
    selected = [
        item.callspec.params["c"]
        for item in request.session.items
        if item.module is request.module
        and hasattr(item, "callspec")
        and "c" in item.callspec.params
    ]
    if any("{run" in c.argv for c in selected):
        request.getfixturevalue("runs")
    scratch = tmp_path_factory.mktemp("cases")

    def run(number: int, c: Case) -> subprocess.CompletedProcess:
        root = scratch / str(number)
        root.mkdir()
        for name in set(re.findall(r"\{(\w+)\}", c.argv)):
            source = base / NAMES[name]
            if source.is_dir():
                shutil.copytree(source, root / NAMES[name], symlinks=True)
            elif source.exists():
                shutil.copy(source, root / NAMES[name])
        paths = {name: str(root / rel) for name, rel in NAMES.items()}
        return harmcache(root, *[part.format(**paths) for part in c.argv.split()])

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return dict(zip(selected, pool.map(run, range(len(selected)), selected)))


def harmcache(cwd: Path | str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(HARMCACHE), *args],
        cwd=cwd,
        env=ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _flat(text: str) -> str:
    """click's error box with its frame removed and its lines joined."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@pytest.mark.slow
@pytest.mark.parametrize("c", CASES)
def test_fails_with_one_line_and_a_documented_exit_code(c: Case, outcomes):
    proc = outcomes[c]
    shown = f"$ harmcache {c.argv}\n--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}"
    assert "Traceback" not in proc.stderr + proc.stdout, shown
    assert proc.returncode == c.code, shown
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    if c.code == OK:
        assert not any(line.startswith("error:") for line in lines), shown
        return
    if c.click:
        # click prints its usage line (when it knows the command) and a boxed message.
        assert re.search(r"^Usage: harmcache|Error", proc.stderr, re.MULTILINE), shown
        assert not any(line.startswith("error:") for line in lines), shown
        message = _flat(proc.stderr)
    else:
        # Log lines and `problem:` lines may come first; the error is the last line, and only one.
        errors = [line for line in lines if line.startswith("error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0], shown
        message = errors[0]
    if c.match:
        assert re.search(c.match, message), shown


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_the_system_refusing_an_operation_is_one_line(code, capsys):
    @handle_errors
    def command():
        raise OSError(code, os.strerror(code), "/data/cache/features/clip/shard-1.h5")

    with pytest.raises(typer.Exit) as stop:
        command()
    assert stop.value.exit_code == FAILED
    assert capsys.readouterr().err == (
        f"error: {os.strerror(code)}: /data/cache/features/clip/shard-1.h5\n"
    )


@pytest.mark.parametrize("error", [FileNotFoundError, IsADirectoryError, NotADirectoryError])
def test_other_os_errors_stay_loud(error):
    """They are as likely a wrong path in harmcache as in the user's input."""

    @handle_errors
    def command():
        raise error("somewhere")

    with pytest.raises(error):
        command()


def test_make_folder_names_the_file_in_the_way(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match=r"^--out .*/file is not a folder$"):
        make_folder(tmp_path / "file", "--out ")
    with pytest.raises(UsageError, match=r"a/b is not a folder: .*/file is a file$"):
        make_folder(tmp_path / "file" / "a" / "b")
    make_folder(tmp_path / "new" / "nested")
    assert (tmp_path / "new" / "nested").is_dir()
