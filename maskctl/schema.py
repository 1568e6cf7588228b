"""Settings declared once: a dataclass field carries its default, help text, bounds and choices
(as PEFT's config fields carry their help). ``check_fields`` validates an instance from them, so
every value is checked before any model or data is loaded, and ``maskctl/cli/options.py`` turns
the same fields into command-line options: a new option is one field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from maskctl.errors import MaskctlError


def setting(
    default: Any,
    help: str,  # noqa: A002 - the option's help, as argparse and typer name it
    *,
    choices: Iterable[str] | None = None,
    min: float | None = None,  # noqa: A002 - inclusive bounds
    max: float | None = None,  # noqa: A002
    above: float | None = None,
    below: float | None = None,  # exclusive bounds
    panel: str | None = None,
    metavar: str | None = None,
) -> Any:
    """A dataclass field with what its command-line option shows and what values it accepts.

    ``choices`` is a tuple, or a ``maskctl.registry.Registry`` whose names are read when the
    options are built and a value is checked, so a plugin's kind or method is a choice too."""
    meta = {
        "help": help,
        "choices": choices,
        "min": min,
        "max": max,
        "above": above,
        "below": below,
        "panel": panel,
        "metavar": metavar,
    }
    meta = {k: v for k, v in meta.items() if v is not None}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_fields(obj: Any) -> None:
    """Refuse a value outside its field's choices or bounds (None means "not given")."""
    for f in dataclasses.fields(obj):
        value, meta = getattr(obj, f.name), f.metadata
        if value is None:
            continue
        if "choices" in meta and value not in meta["choices"]:
            raise MaskctlError(f"unknown {flag(f.name)} {value!r}", f"use one of {', '.join(meta['choices'])}")
        low = ("[", meta["min"], ">=") if "min" in meta else ("(", meta["above"], ">") if "above" in meta else None
        high = ("]", meta["max"], "<=") if "max" in meta else (")", meta["below"], "<") if "below" in meta else None
        too_low = low is not None and (value < low[1] if low[2] == ">=" else value <= low[1])
        too_high = high is not None and (value > high[1] if high[2] == "<=" else value >= high[1])
        if too_low or too_high:
            rule = (
                f"in {low[0]}{low[1]:g}, {high[1]:g}{high[0]}"
                if low and high
                else f"{low[2]} {low[1]:g}"
                if low
                else f"{high[2]} {high[1]:g}"
                if high
                else ""
            )
            raise MaskctlError(f"{flag(f.name)} {value!r} is out of range", f"give a value {rule}")


def _field(cls: type, name: str) -> dataclasses.Field:
    return next(f for f in dataclasses.fields(cls) if f.name == name)


def bounds_of(cls: type, name: str) -> dict[str, Any]:
    """A field's choices and bounds, for another setting that must accept the same values."""
    meta = _field(cls, name).metadata
    return {k: meta[k] for k in ("choices", "min", "max", "above", "below") if k in meta}


def default_of(cls: type, name: str) -> Any:
    return _field(cls, name).default


def same_as(cls: type, name: str, *, panel: str | None = None) -> Any:
    """A setting that is another class's field: the same default, help, choices and bounds."""
    f = _field(cls, name)
    return setting(
        f.default, f.metadata["help"], panel=panel, metavar=f.metadata.get("metavar"), **bounds_of(cls, name)
    )


def did_you_mean(word: str, known: Any, fallback: str) -> str:
    """The fix for an unknown key: the closest known one, else ``fallback``."""
    import difflib

    close = difflib.get_close_matches(word, list(known), n=1)
    return f"did you mean {close[0]!r}?" if close else fallback
