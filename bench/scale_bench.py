"""A million clips: bookkeeping that stays linear (issue 18).

Stage two and cache maintenance must cost what the videos cost, not more: at a million cached
videos `cache info` is a glance, training a linear head is a minute, and rerunning an extraction
over inputs that are all cached prints a summary and costs seconds. This benchmark builds
synthetic caches in the real on-disk format (bench/scale_data.py: tiny inputs, one CLIP family
exactly as `harmcache extract --random-init --extractors clip` makes it, 2 rows per video,
shards of 8 videos) at each size and runs every step as the real command line in a subprocess,
timed by `os.wait4`: wall seconds, CPU seconds (user + sys) and peak RSS.

Steps, in order: `cache info --json`, `cache verify`, `cache verify --sample 8`,
`cache reindex`, `cache compact` of the 8-video shards (as `train` advises when it finds
them), then on the compacted cache `train --head logreg`, `train --head lightgbm --split-from`
the first run, `evaluate` and `sweep-threshold` of the logreg run, and `extract` over every
input (all cached), beside a process that only loads the same random-init CLIP model. A step
whose peak memory at the smaller size, grown with the videos, would not fit in this machine is
not run, and the result says so. Between consecutive sizes, each step's growth exponent is
log(cpu2 / cpu1) / log(n2 / n1): 1 is linear. A command's fixed start-up (imports) is in its
CPU seconds, so at small sizes the exponents read low; the two largest sizes are the test.

Targets (at 10^6 videos; the summary says at which size it checked them): `cache info` <= 5
CPU-s; the label join <= 10 s; `train --head logreg` <= 60 s; `evaluate` <= 30 s;
`cache compact` of 125,000 shards <= 600 s; the extract rerun <= 60 s and <= 500 MB above the
loaded models; every growth exponent from 10^5 to 10^6 <= 1.1.

    python -m bench --only scale [--quick]       # 10^4, 10^5, 10^6 (quick: 10^3, 10^4)
    python -m bench.scale_bench --sizes 10000,100000 --steps info,verify --out /tmp/s.json
    python -m bench.scale_bench --code ../old-checkout ...   # the same steps on other code
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.meta import run_metadata
from bench.scale_data import SHARD_VIDEOS, SyntheticCache, build

ISSUE = "18: A million clips: bookkeeping that stays linear"
FULL_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (1_000, 10_000)
TARGET_SIZE = 1_000_000
STEP_TIMEOUT_S = 1200
VERIFY_SAMPLE = 8
GROWTH_LIMIT = 1.1
TAIL_CHARS = 2000
"""How much of a failed step's stderr the result keeps."""

STEPS = (
    "info",
    "verify",
    "verify-sample",
    "reindex",
    "compact",
    "train-logreg",
    "train-lightgbm",
    "evaluate",
    "sweep",
    "extract",
)
"""In the order a team runs them: the cache is checked, rebuilt and compacted from the 8-video
shards extraction leaves (as `train` advises when it finds them), then stage two runs."""
MODELS_STEP = "extract-models"
"""Measured with `extract`: a process that loads the models the rerun would, and exits."""
NEEDS = {"train-lightgbm": "train-logreg", "evaluate": "train-logreg", "sweep": "train-logreg"}
"""Steps that read another step's run directory."""
RUNS = {"train-logreg": "runs/logreg", "train-lightgbm": "runs/lightgbm"}

# (name, what it measures, step, field of the step's record, limit at 10^6 videos)
TARGETS = (
    ("cache_info_cpu_s", "`cache info --json` CPU seconds", "info", "cpu_s", 5.0),
    ("label_join_s", "label join seconds (train's metrics.json)", "train-logreg", "label_join_s",
     10.0),
    ("train_logreg_s", "`train --head logreg` wall seconds", "train-logreg", "wall_s", 60.0),
    ("evaluate_s", "`evaluate` wall seconds", "evaluate", "wall_s", 30.0),
    ("compact_s", "`cache compact` wall seconds", "compact", "wall_s", 600.0),
    ("extract_rerun_s", "extract rerun wall seconds", "extract", "wall_s", 60.0),
    ("extract_rss_above_models_mb", "extract rerun peak RSS above the loaded models (MB)",
     "extract", "rss_above_models_mb", 500.0),
)  # fmt: skip

LOAD_MODELS = """
from harmcache.extract.config import ExtractConfig, resolve_device
from harmcache.extract.pipeline import build_extractors
config = ExtractConfig(extractors="clip", random_init=True)
settings = config.settings(resolve_device(config.device, config.engine))
for extractor in build_extractors(config.extractors, settings):
    extractor.load()
"""
"""What `extract --random-init --extractors clip` builds before its first video."""

CLI_FROM_CODE = """
import importlib.util, os, sys
code = sys.argv.pop(1)
sys.path.insert(0, code)
cli = os.path.join(code, "cli")
if not os.path.isdir(os.path.join(code, "harmcache", "cli")) and os.path.isdir(cli):
    # cli/ installs as harmcache.cli (see pyproject.toml): map it from that checkout too.
    spec = importlib.util.spec_from_file_location(
        "harmcache.cli", os.path.join(cli, "__init__.py"), submodule_search_locations=[cli]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["harmcache.cli"] = module
    spec.loader.exec_module(module)
from harmcache.cli.main import main
sys.argv[0] = "harmcache"
main()
"""
"""The command line of another checkout: its harmcache and its cli/, whatever is installed."""


# --- running a command ---------------------------------------------------------------------


@dataclass(frozen=True)
class Runner:
    """How the steps start harmcache: the installed command, or (`code`) another checkout's
    source, with PYTHONPATH set to it for every subprocess."""

    code: Path | None = None

    def harmcache(self, *args: str) -> list[str]:
        if self.code is not None:
            return [sys.executable, "-c", CLI_FROM_CODE, str(self.code), *args]
        script = Path(sys.executable).with_name("harmcache")
        if script.exists():
            return [str(script), *args]
        return [sys.executable, "-c", "from harmcache.cli.main import main; main()", *args]

    def python(self, source: str) -> list[str]:
        return [sys.executable, "-c", source]

    def env(self) -> dict[str, str]:
        env = dict(os.environ, HARMCACHE_OFFLINE="1", YOLO_OFFLINE="1")
        if self.code is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(self.code), os.environ.get("PYTHONPATH")) if p
            )
        return env


MEASURE = r"""
import json, os, signal, subprocess, sys, threading, time
result, timeout, out, err, *argv = sys.argv[1:]
killed = threading.Event()
def kill(*_):
    killed.set()
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
with open(out, "wb") as stdout, open(err, "wb") as stderr:
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                            start_new_session=True)
    signal.signal(signal.SIGTERM, lambda *_: (kill(), os._exit(143)))
    timer = threading.Timer(float(timeout), kill)
    timer.daemon = True
    timer.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    timer.cancel()
proc.returncode = os.waitstatus_to_exitcode(status)
with open(result, "w") as f:
    json.dump({"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
               "max_rss_kib": usage.ru_maxrss, "rc": proc.returncode,
               "timed_out": killed.is_set()}, f)
"""
"""Runs one command in its own process group and measures it with `os.wait4`. It runs in a
fresh interpreter with nothing imported because Linux counts the RSS a child had between fork
and exec in its peak: forked from this process (numpy, h5py, torch loaded) every command would
read as at least this process's size."""
MEASURE_GRACE_S = 60


def measure(
    argv: list[str], *, cwd: Path, env: dict, logs: Path, name: str, timeout_s: float
) -> dict:
    """Run one command to its end: wall seconds, user + sys CPU seconds and peak RSS, the exit
    code, and whether it ran past `timeout_s` (then it is killed, with its process group). Its
    stdout and stderr go to `logs/<name>.out|.err`."""
    logs.mkdir(parents=True, exist_ok=True)
    out, err, measured = (logs / f"{name}.{ext}" for ext in ("out", "err", "rusage.json"))
    measured.unlink(missing_ok=True)
    shim = [sys.executable, "-I", "-c", MEASURE, str(measured), str(timeout_s), str(out), str(err)]
    proc = subprocess.Popen([*shim, *argv], cwd=cwd, env=env, stdin=subprocess.DEVNULL)
    try:
        proc.wait(timeout_s + MEASURE_GRACE_S)
    except BaseException:  # interrupted, or the measuring process hung: end the command too
        proc.terminate()
        proc.wait()
        raise
    if proc.returncode != 0 or not measured.exists():
        raise RuntimeError(f"measuring {name} failed (exit {proc.returncode}): {argv}")
    usage = json.loads(measured.read_text())
    stdout = out.read_text(errors="replace")
    stderr = err.read_text(errors="replace")
    record = {
        "wall_s": round(usage["wall_s"], 3),
        "cpu_s": round(usage["cpu_s"], 3),
        "max_rss_mb": round(usage["max_rss_kib"] / 1024, 1),  # Linux gives KiB
        "rc": usage["rc"],
        "timed_out": usage["timed_out"],
        "lines_printed": len(stdout.splitlines()) + len(stderr.splitlines()),
    }
    if record["rc"] != 0:
        record["stderr_tail"] = stderr[-TAIL_CHARS:]
    return record


# --- the steps at one size -----------------------------------------------------------------


def step_args(name: str, data: SyntheticCache) -> list[str]:
    """The command line of a step, with paths relative to the size's folder (its cwd)."""
    cache, inputs, labels = (
        os.path.relpath(p, data.root) for p in (data.cache, data.inputs, data.labels)
    )
    train = ["train", "--cache", cache, "--labels", labels]
    return {
        "info": ["cache", "info", "--json", cache],
        "verify": ["cache", "verify", cache],
        "verify-sample": ["cache", "verify", "--sample", str(VERIFY_SAMPLE), cache],
        "reindex": ["cache", "reindex", cache],
        "train-logreg": [*train, "--head", "logreg", "--out", RUNS["train-logreg"]],
        "train-lightgbm": [
            *train,
            "--head",
            "lightgbm",
            "--out",
            RUNS["train-lightgbm"],
            "--split-from",
            RUNS["train-logreg"],
        ],
        "evaluate": ["evaluate", RUNS["train-logreg"]],
        "sweep": ["sweep-threshold", RUNS["train-logreg"]],
        "extract": ["extract", "--random-init", "--extractors", "clip", inputs, "--out", cache],
        "compact": ["cache", "compact", cache],
    }[name]


def measure_size(
    data: SyntheticCache,
    steps: tuple[str, ...] = STEPS,
    *,
    runner: Runner | None = None,
    timeout_s: float = STEP_TIMEOUT_S,
    before: dict | None = None,
) -> dict:
    """Every step of `steps`, in STEPS order, over one synthetic cache; what each measured and
    what it said (videos reported, the rerun's counts, train's own timings). `before`: the
    record of a smaller size; a step whose peak memory there, grown in proportion to the
    videos, would not fit in this machine's memory is not run, and the record says why."""
    runner = runner or Runner()
    logs = data.root / "logs"
    record: dict = {
        "n": data.n,
        "harmful": data.harmful,
        "family": data.family,
        "build_s": round(data.build_s, 2),
        "cache": cache_sizes(data.cache, data.n),
        "steps": {},
    }
    done = record["steps"]

    def run_one(name: str, argv: list[str]) -> dict:
        print(f"  [{data.n}] {name} ...", file=sys.stderr, flush=True)
        env = runner.env()
        result = measure(argv, cwd=data.root, env=env, logs=logs, name=name, timeout_s=timeout_s)
        print(
            f"  [{data.n}] {name}: rc {result['rc']}, {result['wall_s']} s wall, "
            f"{result['cpu_s']} CPU-s, {result['max_rss_mb']} MB",
            file=sys.stderr,
            flush=True,
        )
        return result

    for name in [s for s in STEPS if s in steps]:
        need = NEEDS.get(name)
        if need and done.get(need, {}).get("rc") != 0:
            done[name] = {"skipped": f"needs {need}, which did not run or failed"}
            continue
        too_big = _projected_over_memory(name, data.n, before)
        if too_big:
            done[name] = {"skipped": too_big}
            print(f"  [{data.n}] {name}: skipped ({too_big})", file=sys.stderr, flush=True)
            continue
        argv = runner.harmcache(*step_args(name, data))
        if name == "extract":
            done[MODELS_STEP] = run_one(MODELS_STEP, runner.python(LOAD_MODELS))
        result = run_one(name, argv)
        result["command"] = " ".join(["harmcache", *step_args(name, data)])
        try:
            result.update(_said(name, data, result, logs, done))
        except (OSError, ValueError, KeyError, IndexError, StopIteration) as exc:
            # Another checkout's command may word its output differently: keep the numbers.
            result["unreadable_output"] = f"{type(exc).__name__}: {exc}"
        done[name] = result
    record["cache_after"] = cache_sizes(data.cache, data.n)
    return record


MEMORY_SHARE = 0.75
"""A step is run only if its projected peak fits in this share of the machine's memory."""


def _projected_over_memory(name: str, n: int, before: dict | None) -> str | None:
    """Why step `name` would not fit at n videos (its peak at the smaller size, grown in
    proportion), or None."""
    seen = (before or {}).get("steps", {}).get(name, {})
    if not seen.get("max_rss_mb"):
        return None
    projected = seen["max_rss_mb"] * n / before["n"]
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    if projected <= MEMORY_SHARE * total:
        return None
    return (
        f"projected peak {projected / 1024:.1f} GiB ({seen['max_rss_mb']:.0f} MB at "
        f"{before['n']} videos, grown with the videos) exceeds {MEMORY_SHARE:.0%} of this "
        f"machine's {total / 1024:.1f} GiB"
    )


SUMMARY_LINE = re.compile(
    r"extracted (\d+), cached (\d+), failed (\d+) of (\d+) input\(s\) in ([\d.]+) s"
)
MERGED_LINE = re.compile(r"merged (\d+) shard\(s\) holding (\d+) video\(s\) into (\d+)")


def _said(name: str, data: SyntheticCache, result: dict, logs: Path, done: dict) -> dict:
    """What a finished step reported about the cache, read from its output or run folder."""
    if result["rc"] != 0:
        return {}
    stdout = (logs / f"{name}.out").read_text(errors="replace")
    if name == "info":
        report = json.loads(stdout.strip().splitlines()[-1])
        family = next(f for f in report["families"] if f["family"] == data.family)
        return {
            "videos_reported": report["videos"],
            "family_videos": family["videos"],
            "family_shards": family["shards"],
        }
    if name in ("verify", "verify-sample"):
        return {"consistent": stdout.startswith("ok:")}
    if name in RUNS:
        metrics = json.loads((data.root / RUNS[name] / "metrics.json").read_text())
        seconds = metrics.get("seconds", {})
        join, basis = label_join_seconds(seconds)
        test = metrics.get("test") or {}
        return {
            "label_join_s": join,
            "label_join_from": basis,
            "train_seconds": seconds,
            "matched_videos": metrics.get("join", {}).get("matched_videos"),
            "test_auroc": test.get("auroc"),
        }
    if name == "extract":
        found = SUMMARY_LINE.search(stdout)
        keys = ("extracted", "cached", "failed", "inputs")
        counts = dict(zip(keys, map(int, found.groups()[:4]))) if found else {}
        models = done.get(MODELS_STEP, {})
        above = None
        if models.get("rc") == 0:
            above = round(result["max_rss_mb"] - models["max_rss_mb"], 1)
        return {
            **counts,
            "models_max_rss_mb": models.get("max_rss_mb"),
            "rss_above_models_mb": above,
        }
    if name == "compact":
        found = MERGED_LINE.search(stdout)
        if found:
            merged, videos, written = map(int, found.groups())
            return {"shards_merged": merged, "videos_moved": videos, "shards_written": written}
    return {}


def label_join_seconds(seconds: dict) -> tuple[float | None, str | None]:
    """The label join's seconds from train's metrics.json `seconds` block, and where they come
    from: its own entry if it has one, else an upper bound (the run's total less loading and
    fitting: the join, the split, the threshold sweep, calibration and scoring)."""
    key = next((key for key in seconds if "join" in key), None)
    if key is not None:
        return round(seconds[key], 3), f"metrics.json seconds.{key}"
    if {"total", "load", "fit"} <= seconds.keys():
        bound = seconds["total"] - seconds["load"] - seconds["fit"]
        return round(bound, 3), "upper bound: metrics.json seconds total - load - fit"
    return None, None


def cache_sizes(cache: Path, n: int) -> dict:
    """The index's size and the shards' count and bytes, in all and per video."""
    index = sum(p.stat().st_size for p in cache.glob("index.sqlite*"))  # with any journal
    shards = shard_bytes = 0
    for folder in (cache / "features").iterdir():
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("shard-") and entry.name.endswith(".h5"):
                    shards += 1
                    shard_bytes += entry.stat().st_size
    return {
        "index_bytes": index,
        "index_bytes_per_video": round(index / n, 1),
        "shards": shards,
        "shard_bytes": shard_bytes,
        "shard_bytes_per_video": round(shard_bytes / n, 1),
    }


# --- the result ----------------------------------------------------------------------------


def growth(sizes: list[dict]) -> list[dict]:
    """Between each two consecutive sizes, every step's exponent of CPU seconds (and of wall
    seconds) in the number of videos: log(t2 / t1) / log(n2 / n1). Steps that failed at either
    size are left out."""
    out = []
    for small, large in zip(sizes, sizes[1:]):
        scale = math.log(large["n"] / small["n"])
        row: dict = {"from": small["n"], "to": large["n"], "cpu": {}, "wall": {}}
        for name in STEPS:
            a, b = small["steps"].get(name, {}), large["steps"].get(name, {})
            if a.get("rc") != 0 or b.get("rc") != 0:
                continue
            for key, field in (("cpu", "cpu_s"), ("wall", "wall_s")):
                if a[field] > 0 and b[field] > 0:
                    row[key][name] = round(math.log(b[field] / a[field]) / scale, 3)
        out.append(row)
    return out


def summarise(sizes: list[dict], growths: list[dict]) -> dict:
    """The issue's targets at the largest size measured, each with its value and pass flag."""
    last = sizes[-1]
    targets = {}
    for name, what, step, field, limit in TARGETS:
        value = last["steps"].get(step, {}).get(field)
        targets[name] = {
            "what": what,
            "limit": limit,
            "value": value,
            "pass": value is not None and value <= limit,
        }
    join_from = last["steps"].get("train-logreg", {}).get("label_join_from")
    targets["label_join_s"]["from"] = join_from
    if growths:
        final = growths[-1]
        worst = max(final["cpu"].items(), key=lambda item: item[1], default=(None, None))
        targets["growth_exponent"] = {
            "what": f"largest CPU growth exponent of a step, {final['from']} -> {final['to']}",
            "limit": GROWTH_LIMIT,
            "value": worst[1],
            "step": worst[0],
            "pass": bool(final["cpu"]) and worst[1] <= GROWTH_LIMIT,
        }
    failed = [
        f"{s['n']}:{name}"
        for s in sizes
        for name, step in s["steps"].items()
        if step.get("rc", 0) != 0 or step.get("timed_out") or "skipped" in step
    ]
    ran = {name: step for name, step in last["steps"].items() if "wall_s" in step}
    slowest = sorted(ran, key=lambda name: ran[name]["wall_s"], reverse=True)[:3]
    extract = last["steps"].get("extract", {})
    return {
        "issue": ISSUE,
        "sizes": [s["n"] for s in sizes],
        "checked_at": last["n"],
        "at_target_size": last["n"] == TARGET_SIZE,
        "note": None
        if last["n"] == TARGET_SIZE
        else f"the limits are the issue's for {TARGET_SIZE:,} videos, checked here at "
        f"{last['n']:,}",
        "all_pass": all(t["pass"] for t in targets.values()),
        "targets": targets,
        "failed_or_skipped_steps": failed,
        "slowest_steps_s": {name: ran[name]["wall_s"] for name in slowest},
        "rerun_lines_printed": extract.get("lines_printed"),
        "rerun_cached": extract.get("cached"),
        "build_s": {str(s["n"]): s["build_s"] for s in sizes},
    }


def report(sizes: list[dict], *, runner: Runner | None = None, timeout_s=STEP_TIMEOUT_S) -> dict:
    """The result file: summary, meta, growth, then what each size measured."""
    runner = runner or Runner()
    growths = growth(sizes)
    meta = run_metadata()
    if runner.code is not None:
        meta["code"] = code_metadata(runner.code)
    return {
        "summary": summarise(sizes, growths),
        "meta": meta,
        "settings": {
            "shard_videos": SHARD_VIDEOS,
            "rows_per_video": 2,
            "feature_dim": 512,
            "step_timeout_s": timeout_s,
            "verify_sample": VERIFY_SAMPLE,
            "page_cache": "warm: each size's steps run right after its build",
            "commands": "installed harmcache" if runner.code is None else f"{runner.code}",
        },
        "growth": growths,
        "sizes": sizes,
    }


def code_metadata(code: Path) -> dict:
    """The commit of the checkout `--code` ran, and whether its tree differed from it."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", "-C", str(code), *args], capture_output=True, text=True)
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD") or None
    # As bench/meta.py: results written in that checkout are not the code measured.
    changed = git("diff", "--name-only", "HEAD", "--", ".", ":(exclude)bench/results")
    files = changed.splitlines() if commit else []
    return {"path": str(code), "commit": commit, "dirty": bool(files), "dirty_files": files}


def benchmark(
    sizes: tuple[int, ...],
    steps: tuple[str, ...] = STEPS,
    *,
    workdir: Path | None = None,
    keep: bool = False,
    runner: Runner | None = None,
    timeout_s: float = STEP_TIMEOUT_S,
) -> dict:
    """Build each size's cache, measure the steps over it, and report. Caches are built under
    `workdir` (default: a new folder in /tmp) and deleted once measured unless `keep`."""
    runner = runner or Runner()
    root = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="harmcache-scale-"))
    measured = []
    try:
        for n in sizes:
            print(f"[{n}] building the cache under {root} ...", file=sys.stderr, flush=True)
            data = build(root / f"n{n}", n)
            print(f"[{n}] built in {data.build_s:.1f} s", file=sys.stderr, flush=True)
            before = measured[-1] if measured else None
            measured.append(
                measure_size(data, steps, runner=runner, timeout_s=timeout_s, before=before)
            )
            if not keep:
                shutil.rmtree(data.root, ignore_errors=True)
    finally:
        if not keep and workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    return report(measured, runner=runner, timeout_s=timeout_s)


def run(results_dir: Path, quick: bool = False) -> dict:
    """Every step at 10^4, 10^5 and 10^6 videos (quick: 10^3 and 10^4)."""
    result = benchmark(QUICK_SIZES if quick else FULL_SIZES)
    name = "scale-cpu-quick.json" if quick else "scale-cpu.json"
    write(result, Path(results_dir) / name)
    return result


def write(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_bench", description=ISSUE)
    parser.add_argument("--sizes", help="comma-separated video counts (default 10^4,10^5,10^6)")
    parser.add_argument("--quick", action="store_true", help="10^3 and 10^4 videos")
    parser.add_argument("--steps", help=f"comma-separated subset of {','.join(STEPS)}")
    parser.add_argument("--keep", action="store_true", help="keep the caches and logs")
    parser.add_argument("--workdir", type=Path, help="where caches are built (default: /tmp)")
    parser.add_argument(
        "--code", type=Path, help="run the command line from this checkout's source"
    )
    parser.add_argument("--out", type=Path, help="result file (default: bench/results/...)")
    parser.add_argument("--timeout", type=float, default=STEP_TIMEOUT_S, help="seconds per step")
    args = parser.parse_args(argv)
    try:
        args.sizes = (
            tuple(int(s) for s in args.sizes.split(",") if s.strip())
            if args.sizes
            else (QUICK_SIZES if args.quick else FULL_SIZES)
        )
    except ValueError:
        parser.error(f"--sizes takes comma-separated integers, got {args.sizes!r}")
    if not args.sizes or min(args.sizes) < 1:
        parser.error("--sizes needs at least one video count above 0")
    args.steps = tuple(s.strip() for s in (args.steps or ",".join(STEPS)).split(",") if s.strip())
    unknown = [s for s in args.steps if s not in STEPS]
    if unknown or not args.steps:
        parser.error(f"--steps takes names from {','.join(STEPS)}, got {unknown or 'none'}")
    if args.code is not None and not (args.code / "harmcache").is_dir():
        parser.error(f"--code {args.code} holds no harmcache/ package")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runner = Runner(args.code.resolve() if args.code else None)
    result = benchmark(
        args.sizes,
        args.steps,
        workdir=args.workdir,
        keep=args.keep,
        runner=runner,
        timeout_s=args.timeout,
    )
    name = "scale-cpu-quick.json" if args.quick else "scale-cpu.json"
    out = args.out or Path(__file__).resolve().parent / "results" / name
    write(result, out)
    print(json.dumps(result["summary"], indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
