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


def _plain_flags(params: list[Any]) -> None:
    for param in params:
        if getattr(param, "is_bool_flag", False) and param.metavar is None:
            param.metavar = ""  # typer shows the metavar instead of the type: nothing


class Command(TyperCommand):
    def format_help(self, ctx, formatter) -> None:
        _plain_flags(self.get_params(ctx))
        super().format_help(ctx, formatter)


class Group(TyperGroup):
    def format_help(self, ctx, formatter) -> None:
        _plain_flags(self.get_params(ctx))
        super().format_help(ctx, formatter)


def paragraphs(doc: str | None) -> str:
    """A docstring with each paragraph on one line (paragraphs stay apart), for the terminal to
    wrap at its own width."""
    text = inspect.cleandoc(doc or "")
    return "\n\n".join(re.sub(r"\s*\n\s*", " ", part.strip()) for part in text.split("\n\n") if part.strip())


def command(app: typer.Typer, name: str, run: Callable) -> None:
    """Register ``run`` as ``name`` with the help above."""
    app.command(name, cls=Command, help=paragraphs(run.__doc__))(run)
