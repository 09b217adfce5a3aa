"""Run the benchmarks and summarise them.

    python -m bench [--only NAME,...] [--quick]   # NAMEs: the keys of BENCHMARKS below

Each benchmark is a module with `run(results_dir) -> dict` that writes its own JSON into
bench/results/, with a `meta` block naming the commit it measured (bench/meta.py). A module
that does not exist yet is skipped with a message. bench/README.md lists what each one claims.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import logging
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

# Random-init backbones only: no benchmark may reach for the network. Set before any import
# that reads them (ultralytics reads YOLO_OFFLINE at import time).
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("HARMCACHE_OFFLINE", "1")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BENCHMARKS = {
    "extract": "bench.extract_bench",
    "train": "bench.train_bench",
    "decode": "bench.decode_cost",
    "rerun": "bench.rerun_bench",
    "guarantee": "bench.guarantee_sim",
    "cache-read": "bench.cache_read_bench",
    "loader": "bench.loader_bench",
    "long-video": "bench.long_video_bench",
    "audio": "bench.audio_bench",
    "image-memory": "bench.image_memory_bench",
    "scale": "bench.scale_bench",
    "policy": "bench.policy_sim",
    "categories": "bench.categories_bench",
    "multi-policy": "bench.multi_policy",
    "bank": "bench.bank_bench",
    "pdq-cost": "bench.pdq_cost",
    "known-robustness": "bench.known_robustness",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only", help=f"comma-separated subset of {','.join(BENCHMARKS)} (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs, to check they work")
    args = parser.parse_args(argv)
    args.names = chosen(parser, args.only)
    return args


def chosen(parser: argparse.ArgumentParser, only: str | None) -> list[str]:
    if not only:
        return list(BENCHMARKS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown or not names:
        parser.error(f"--only takes names from {','.join(BENCHMARKS)}, got {only!r}")
    return names


def call_run(module, results_dir: Path, quick: bool) -> dict:
    """Call the module's run(); pass `quick` only to benchmarks that take it."""
    if quick and "quick" in inspect.signature(module.run).parameters:
        return module.run(results_dir, quick=True)
    return module.run(results_dir)


def snapshot(folder: Path) -> dict[Path, float]:
    return {p: p.stat().st_mtime for p in folder.glob("*.json")} if folder.is_dir() else {}


def summary_lines(result: dict) -> list[str]:
    """A benchmark's own `summary` block if it has one, else its top-level scalars."""
    block = result.get("summary") if isinstance(result, dict) else None
    if not isinstance(block, dict):
        block = {k: v for k, v in (result or {}).items() if isinstance(v, (int, float, str))}
    return [f"    {key}: {value}" for key, value in list(block.items())[:30]]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)  # clip's and torch.jit's import noise
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    failed = []
    for name in args.names:
        module_name = BENCHMARKS[name]
        if importlib.util.find_spec(module_name) is None:
            print(f"[{name}] skipped: {module_name} does not exist yet")
            continue
        print(f"[{name}] running {module_name}{' (quick)' if args.quick else ''} ...", flush=True)
        before = snapshot(RESULTS_DIR)
        start = time.perf_counter()
        try:
            result = call_run(importlib.import_module(module_name), RESULTS_DIR, args.quick)
        except Exception:  # noqa: BLE001 - one broken benchmark must not cost the others' results
            traceback.print_exc()
            print(f"[{name}] FAILED after {time.perf_counter() - start:.0f} s")
            failed.append(name)
            continue
        print(f"[{name}] done in {time.perf_counter() - start:.0f} s")
        for path, mtime in sorted(snapshot(RESULTS_DIR).items()):
            if before.get(path) != mtime:
                print(f"    wrote {path.relative_to(RESULTS_DIR.parent.parent)}")
        print("\n".join(summary_lines(result)))
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


# The guard matters: decode workers are spawned, and spawn re-imports the main module.
if __name__ == "__main__":
    sys.exit(main())
