"""The options of Config's fields: each one a command-line flag and an environment
variable, and the table of them that docs/operations.md shows."""

from __future__ import annotations

import argparse
import os
import typing
from dataclasses import Field, fields
from pathlib import Path
from typing import Any

from server.config import Config

ENV_PREFIX = "CONVERSATION_SERVICE_"

_FIELDS: dict[str, Field[Any]] = {f.name: f for f in fields(Config)}


def config_option(parser: argparse.ArgumentParser, name: str) -> None:
    """The option of a Config field: --NAME, or the environment variable
    CONVERSATION_SERVICE_NAME, then the field's default. A boolean field is a switch:
    one on by default is turned off with --no-NAME or CONVERSATION_SERVICE_NAME=off, one
    off by default turned on with --NAME or CONVERSATION_SERVICE_NAME=on."""
    config_field = _FIELDS[name]
    flag, env = name.replace("_", "-"), ENV_PREFIX + name.upper()
    meaning: str = config_field.metadata["help"]
    kind = _option_type(name)
    if kind is bool and not config_field.default:
        parser.add_argument(
            f"--{flag}",
            dest=name,
            action="store_true",
            default=os.environ.get(env, "off") == "on",
            help=f"{meaning}; env {env}=on",
        )
        return
    if kind is bool:
        parser.add_argument(
            f"--no-{flag}",
            dest=name,
            action="store_false",
            default=os.environ.get(env, "on") != "off",
            help=f"turn off: {meaning}; env {env}=off",
        )
        return
    from_env = os.environ.get(env)
    extra = {"type": kind, **config_field.metadata["argparse"]}
    if extra.get("action") == "append":  # repeatable: the variable holds them space-separated
        parser.add_argument(
            f"--{flag}",
            default=tuple(extra["type"](value) for value in (from_env or "").split()),
            help=f"{meaning}; env {env}",
            **{**extra, "action": _Repeated},
        )
        return
    parser.add_argument(
        f"--{flag}",
        default=extra["type"](from_env) if from_env else config_field.default,
        help=f"{meaning} (default %(default)s); env {env}",
        **extra,
    )


class _Repeated(argparse.Action):
    """A repeatable option as a tuple: the values given on the command line, which replace
    those of its environment variable (the default)."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        given = getattr(namespace, self.dest)
        setattr(namespace, self.dest, (*(() if given is self.default else given), values))


def _option_type(name: str) -> type:
    """The type a Config field's option parses to: its annotation, without `| None`."""
    hint = typing.get_type_hints(Config)[name]
    kinds = [k for k in typing.get_args(hint) if k is not type(None)] or [hint]
    kind = kinds[0]
    return Path if kind is Path else kind


def options_table() -> str:
    """`serve`'s options as a Markdown table, for docs/operations.md (a test keeps them equal)."""
    rows = ["| option | environment variable | default | meaning |", "|---|---|---|---|"]
    for config_field in fields(Config):
        name = config_field.name
        env = ENV_PREFIX + name.upper()
        if _option_type(name) is bool and not config_field.default:
            flag, env_value, default = f"--{name.replace('_', '-')}", f"{env}=on", "off"
        elif _option_type(name) is bool:
            flag, env_value, default = f"--no-{name.replace('_', '-')}", f"{env}=off", "on"
        else:
            flag, env_value = f"--{name.replace('_', '-')}", env
            off = config_field.default is None or config_field.default == ()
            default = "off" if off else str(config_field.default)
        rows.append(f"| `{flag}` | `{env_value}` | {default} | {config_field.metadata['help']} |")
    return "\n".join(rows)
