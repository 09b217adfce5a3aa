"""Options declared once. A config dataclass declares each field with `setting(...)`: its
default, its one-line help and its check. The library validates a config with `validate`, and
the CLI builds each typer option from the same field (`cli/options.py`), so a default or a help
text cannot differ between `harmcache train` and `harmcache.train()`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from harmcache.errors import UsageError

Check = Callable[[Any], str | None]
"""Returns what is wrong with a value ("must be at least 1, got 0"), or None when it is fine."""


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    check: Check | None = None,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A config field with its help text and its check."""
    metadata = {"help": help, "check": check}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def validate(config: Any) -> None:
    """Run every field's check; the first failure is a `UsageError` naming the field."""
    for f in dataclasses.fields(config):
        check = f.metadata.get("check")
        problem = check(getattr(config, f.name)) if check else None
        if problem:
            raise UsageError("{param} " + problem, parameter=f.name)


def help_of(config: type, name: str) -> str:
    return config_field(config, name).metadata["help"]


def default_of(config: type, name: str) -> Any:
    f = config_field(config, name)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def config_field(config: type, name: str) -> dataclasses.Field:
    for f in dataclasses.fields(config):
        if f.name == name:
            if "help" not in f.metadata:
                raise TypeError(f"{config.__name__}.{name} is not declared with setting()")
            return f
    raise TypeError(f"{config.__name__} has no setting {name!r}")


# The checks configs share.


def at_least(low: float) -> Check:
    return lambda v: None if v is None or v >= low else f"must be at least {low:g}, got {v:g}"


def above(low: float) -> Check:
    return lambda v: None if v is None or v > low else f"must be above {low:g}, got {v:g}"


def fraction() -> Check:
    return lambda v: None if 0 <= v < 1 else f"must be in [0, 1), got {v:g}"


def one_of(*choices: Any) -> Check:
    shown = " | ".join(str(c) for c in choices)
    return lambda v: None if v in choices else f"must be one of {shown}, got {v!r}"
