"""Where backbone weights come from: random init, --weights-dir, or the library's own cache.

Nothing here may hang on a closed network: with HARMCACHE_OFFLINE=1 no download is tried, and
a download that is tried runs under a short socket timeout.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from harmcache.errors import WeightsUnavailable
from harmcache.hashing import sha256_file

if TYPE_CHECKING:
    from harmcache.extractors.base import Extractor, ExtractSettings

WEIGHTS_DIR_ENV = "HARMCACHE_WEIGHTS_DIR"
OFFLINE_ENV = "HARMCACHE_OFFLINE"
DOWNLOAD_TIMEOUT_S = 20.0


def weights_dir_from_env() -> Path | None:
    value = os.environ.get(WEIGHTS_DIR_ENV)
    return Path(value) if value else None


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").lower() in ("1", "true", "yes")


def how_to_get(names: list[str]) -> str:
    return (
        f"get {', '.join(names)} on a connected machine with `harmcache weights download DIR`, "
        f"then pass --weights-dir DIR (or set {WEIGHTS_DIR_ENV}); or use --random-init"
    )


def resolve_weights(cls: type[Extractor], settings: ExtractSettings) -> tuple[Path | None, dict]:
    """(path to load, identity for the fingerprint). Raises WeightsUnavailable, never hangs."""
    source = settings.weights
    if source.random_init:
        return None, {"kind": "random-init", "seed": source.seed}
    names = list(cls.weight_files)
    weights_dir = source.weights_dir or weights_dir_from_env()
    if weights_dir is not None:
        path = Path(weights_dir) / names[0]
        if not path.is_file():
            raise WeightsUnavailable(
                f"missing weights for {cls.name}: {names[0]} is not in {weights_dir}; "
                + how_to_get(names)
            )
        return path, _file_identity(path)
    for path in cls.library_cache_paths():
        if path.is_file():
            return path, _file_identity(path)
    if offline():
        raise WeightsUnavailable(
            f"missing weights for {cls.name}: {names[0]} is not in the library cache and "
            f"{OFFLINE_ENV}=1 forbids downloading; " + how_to_get(names)
        )
    paths = cls.library_cache_paths()
    try:
        path = download_weights(cls, paths[0].parent if paths else Path.cwd())
    except WeightsUnavailable as exc:
        raise WeightsUnavailable(
            f"missing weights for {cls.name}: {exc}; " + how_to_get(names)
        ) from None
    return path, _file_identity(path)


def download_weights(cls: type[Extractor], target_dir: Path) -> Path:
    """One extractor's canonical weights into `target_dir` with its library's downloader,
    under a socket timeout so a closed network fails instead of hanging."""
    name = cls.weight_files[0]
    if offline():
        raise WeightsUnavailable(f"{OFFLINE_ENV}=1 forbids downloading {name}")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        path = Path(cls.download(target_dir))
    except Exception as exc:  # noqa: BLE001 - any network, disk or library failure
        raise WeightsUnavailable(f"download of {name} for {cls.name} failed ({exc})") from None
    finally:
        socket.setdefaulttimeout(previous)
    if not path.is_file():
        raise WeightsUnavailable(f"download of {name} for {cls.name} left no file")
    return path


def _file_identity(path: Path) -> dict:
    return {"kind": "file", "name": path.name, "sha256": sha256_file(path)}
