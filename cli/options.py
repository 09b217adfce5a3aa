"""Typer options built from config fields (`harmcache.options`): the default and the help
text come from the library's config, so the CLI cannot drift from `import harmcache`."""

from __future__ import annotations

from typing import Any

import typer

from harmcache.options import default_of, help_of


def option(config: type, name: str, *flags: str, **typer_kwargs: Any) -> Any:
    """`typer.Option` for `config.name`: flag `--name-with-dashes` unless `flags` are given."""
    decls = flags or ("--" + name.replace("_", "-"),)
    return typer.Option(
        default_of(config, name), *decls, help=help_of(config, name), **typer_kwargs
    )


def required(config: type, name: str, *flags: str, **typer_kwargs: Any) -> Any:
    """As `option`, for a setting the command cannot run without."""
    decls = flags or ("--" + name.replace("_", "-"),)
    return typer.Option(..., *decls, help=help_of(config, name), **typer_kwargs)
