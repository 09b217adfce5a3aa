"""The small text files a user hands a command (scores CSVs, policies, taxonomies, prompts):
one wording for a file that is missing, unreadable or not valid YAML, naming what it was for."""

from __future__ import annotations

from pathlib import Path

from harmcache.errors import UsageError


def read_user_text(path: str | Path, what: str = "", *, encoding: str = "utf-8") -> str:
    """The file's text; a UsageError "`what` PATH: no such file" (or "cannot read it")."""
    path = Path(path)
    named = f"{what} {path}" if what else str(path)
    try:
        return path.read_text(encoding=encoding)
    except FileNotFoundError:
        raise UsageError(f"{named}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{named}: cannot read it: {exc}") from None


def read_user_yaml(path: str | Path, what: str) -> object:
    """The file's YAML document; a UsageError names the file, and the line where the YAML
    breaks."""
    import yaml

    path = Path(path)
    try:
        return yaml.safe_load(read_user_text(path, what))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise UsageError(f"{path.name}{at}: not valid YAML: {problem}") from None
