"""harmcache's tests. Unit tests mirror the package (tests/store/ tests harmcache/store/, ...);
tests/cli/ runs the commands, tests/e2e/ the whole pipeline on real media; the package-wide
checks (layers, public API, the documented examples) sit here."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
"""The repository root."""
