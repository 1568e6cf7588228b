"""How ``--help`` reads at any width: flags without a type, docstrings as paragraphs.

Typer shows every option's type beside it, so each plain flag (``--overwrite``, ``--json``,
``-h``) carries a ``<bool>`` that says nothing a flag does not; and it keeps a docstring's line
breaks, so help written at the source's width wraps mid-sentence at any other width. Every
command is registered through ``command`` and every group is a ``Group``: one place for both.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup


class _PlainFlags:
    """Help in which a flag shows no type: typer shows an option's metavar instead of its type,
    so a flag's is set to nothing before the help is drawn."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for param in self.get_params(ctx):
            if getattr(param, "is_bool_flag", False) and param.metavar is None:
                param.metavar = ""
        super().format_help(ctx, formatter)


class Command(_PlainFlags, TyperCommand):
    pass


class Group(_PlainFlags, TyperGroup):
    pass


def paragraphs(doc: str | None) -> str:
    """A docstring with each paragraph on one line (paragraphs stay apart), for the terminal to
    wrap at its own width."""
    text = inspect.cleandoc(doc or "")
    return "\n\n".join(re.sub(r"\s*\n\s*", " ", part.strip()) for part in text.split("\n\n") if part.strip())


def command(app: typer.Typer, name: str, run: Callable) -> None:
    """Register ``run`` as ``name`` with the help above."""
    app.command(name, cls=Command, help=paragraphs(run.__doc__))(run)
