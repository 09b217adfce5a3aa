"""The harmcache command line: a table of command name → library call (see each module)."""

from __future__ import annotations

import os

# Keep libraries off the network before any of them is imported.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_VERBOSE", "False")

import warnings  # noqa: E402

import typer  # noqa: E402

# clip-anytorch imports pkg_resources, whose deprecation warning means nothing to a user.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
# pytorchvideo scripts a helper with torch.jit at import; the deprecation is torch's to settle.
warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)

from . import (  # noqa: E402
    bank_cmd,
    cache_cmd,
    demo_cmd,
    evaluate_cmd,
    extract_cmd,
    match_cmd,
    predict_cmd,
    queue_cmd,
    sweep_cmd,
    train_cmd,
    weights_cmd,
)

app = typer.Typer(
    name="harmcache",
    help="Extract video backbone features once; train and tune harmful-video heads from the cache.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

COMMANDS = (
    extract_cmd,
    cache_cmd,
    demo_cmd,
    weights_cmd,
    train_cmd,
    sweep_cmd,
    evaluate_cmd,  # evaluate and compare
    predict_cmd,
    queue_cmd,
    bank_cmd,  # bank add, info and export
    match_cmd,
)
"""One module per command (or pair of commands reading the same run)."""

for module in COMMANDS:
    module.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
