"""Command options generated from a settings dataclass: each option is declared once, as a
field whose metadata carries its help text, bounds and choices (as PEFT's config fields do).

    @options_from(ServeSettings, arguments=("paths",))
    def serve(settings: ServeSettings) -> None: ...

gives ``maskctl serve PATHS... --port 8000 --max-batch 32 ...``, with typer's help and types;
the command receives one checked-later instance of the dataclass.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, Optional

import typer


def options_from(cls: type, arguments: tuple[str, ...] = ()) -> Callable[[Callable[[Any], None]], Callable]:
    def wrap(run: Callable[[Any], None]) -> Callable:
        hints = typing.get_type_hints(cls)
        params, annotations = [], {}
        for f in dataclasses.fields(cls):
            hint = _optional(hints[f.name])
            meta = dict(f.metadata)
            default = f.default if f.default is not dataclasses.MISSING else None
            if "choices" in meta:  # typer shows an Enum's values as the choices
                hint = enum.Enum(f.name, {c: c for c in meta["choices"]}, type=str)
                default = hint(default)
            if f.name in arguments:
                info = typer.Argument(... if default is None else default, help=meta.get("help"), show_default=False)
            else:
                info = typer.Option(default, f"--{f.name.replace('_', '-')}", help=meta.get("help"),
                                    rich_help_panel=meta.get("panel"))
            params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=hint))
            annotations[f.name] = hint

        def command(**kwargs: Any) -> None:
            return run(cls(**{k: v.value if isinstance(v, enum.Enum) else v for k, v in kwargs.items()}))

        command.__signature__ = inspect.Signature(params)
        command.__annotations__ = annotations
        command.__name__, command.__doc__ = run.__name__, run.__doc__
        return command

    return wrap


def _optional(hint: Any) -> Any:
    """``X | None`` as ``Optional[X]``, the spelling typer reads everywhere."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return Optional[args[0]]  # noqa: UP007
    return hint
