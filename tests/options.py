"""Checking that a command's options are its config's fields: same default, same help."""

from __future__ import annotations

import dataclasses

import typer

from harmcache.options import default_of, help_of


def command_params(app: typer.Typer, name: str) -> dict:
    """The click parameters of `harmcache NAME`, by their Python name."""
    group = typer.main.get_command(app)
    return {p.name: p for p in group.commands[name].params}


def assert_options_match(app: typer.Typer, name: str, config: type, skip=()) -> None:
    """Every field of `config` is an option of `name` with the config's default and help."""
    params = command_params(app, name)
    for f in dataclasses.fields(config):
        if f.name in skip:
            continue
        assert f.name in params, f"harmcache {name} has no option for {config.__name__}.{f.name}"
        param = params[f.name]
        default = default_of(config, f.name)
        assert param.default == default, (name, f.name, param.default, default)
        assert param.help == help_of(config, f.name), (name, f.name)
