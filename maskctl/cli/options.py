"""Command options generated from a settings dataclass (``maskctl.schema``): each option is
declared once, as a field whose metadata carries its help text, bounds, choices and panel.

    @options_from(ServeSettings, arguments=("paths",))
    def serve(settings: ServeSettings) -> None: ...

gives ``maskctl serve PATHS... --port 8000 --max-batch 32 ...``. Commands that merge the
options with other sources first (``maskctl train``: recipes, ``key=value`` overrides) pass
``build=False`` and get the typer context and the raw values; ``extra`` adds options that are
not settings (``--recipe``, ``--sweep``), each an ``inspect.Parameter`` with a typer default.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

import typer

# A longer ``<a|b|c>`` would be folded mid-word in an 80-column --help (it is one word to the
# terminal): such an option shows its name (``--also-train ALSO_TRAIN``) and lists its choices in
# its help.
LONGEST_CHOICES = 20


def options_from(
    cls: type, arguments: tuple[str, ...] = (), extra: tuple[inspect.Parameter, ...] = (), build: bool = True
) -> Callable[[Callable], Callable]:
    def wrap(run: Callable) -> Callable:
        params = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)]
        annotations: dict[str, Any] = {"ctx": typer.Context}
        names = []
        empty: dict[str, Callable[[], Any]] = {}  # list fields: an option not given arrives as None
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            param = _parameter(f, hints[f.name], f.name in arguments)
            params.append(param)
            annotations[f.name] = param.annotation
            names.append(f.name)
            if f.default_factory is not dataclasses.MISSING:
                empty[f.name] = f.default_factory
        for param in extra:
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))
            annotations[param.name] = param.annotation
        params.sort(key=lambda p: not isinstance(p.default, typer.models.ArgumentInfo))  # arguments first

        def command(ctx: typer.Context, **kwargs: Any) -> Any:
            values = {k: v.value if isinstance(v, enum.Enum) else v for k, v in kwargs.items()}
            for name, factory in empty.items():
                if values.get(name) is None:
                    values[name] = factory()
            if build:
                return run(cls(**{n: values[n] for n in names}))
            return run(ctx, {n: values[n] for n in names}, **{p.name: values[p.name] for p in extra})

        command.__signature__ = inspect.Signature(params)
        command.__annotations__ = annotations
        command.__name__, command.__doc__ = run.__name__, run.__doc__
        return command

    return wrap


def parameters_of(cls: type) -> tuple[inspect.Parameter, ...]:
    """A second settings dataclass's fields as ``extra`` options of a command built from another
    (``maskctl train``: ``SweepSettings`` beside ``TrainArgs``)."""
    hints = typing.get_type_hints(cls)
    return tuple(_parameter(f, hints[f.name], False) for f in dataclasses.fields(cls))


def given_on_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether the user typed this option (compared by name: typer may vendor its own click)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _parameter(f: dataclasses.Field, hint: Any, argument: bool) -> inspect.Parameter:
    meta = dict(f.metadata)
    hint = _optional(hint)
    default = f.default if f.default is not dataclasses.MISSING else None
    if "choices" in meta:  # typer shows an Enum's values as the choices
        choice = enum.Enum(f.name, {c: c for c in meta["choices"]}, type=str)
        hint, default = (choice | None, None) if default is None else (choice, choice(default))
        if len("|".join(meta["choices"])) + 2 > LONGEST_CHOICES and "metavar" not in meta:
            meta["metavar"] = f.name.upper()  # argparse's convention
            meta["help"] = f"{meta['help']} One of: {', '.join(meta['choices'])}."
    if argument:
        info = typer.Argument(
            ... if default is None else default, help=meta.get("help"), show_default=False, metavar=meta.get("metavar")
        )
    elif hint is bool:
        info = typer.Option(
            default,
            f"--{f.name.replace('_', '-')}",
            help=meta.get("help"),
            rich_help_panel=meta.get("panel"),
            show_default=False,
        )
    else:
        info = typer.Option(
            default,
            f"--{f.name.replace('_', '-')}",
            help=meta.get("help"),
            rich_help_panel=meta.get("panel"),
            metavar=meta.get("metavar"),
        )
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=hint)


def _optional(hint: Any) -> Any:
    """``Optional[X]`` and ``X | None`` alike as ``X | None``: one spelling for typer."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0] | None
    return hint
