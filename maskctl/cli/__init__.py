"""The ``maskctl`` command line: one thin module per subcommand, each calling the library.

The library never imports this package. ``main`` turns a ``MaskctlError`` into one red line
with its fix and exit code 2; ``--debug`` (or ``MASKCTL_DEBUG=1``) shows the traceback.
"""

from __future__ import annotations

import os
import sys

import typer

from maskctl.cli import analyze as analyze_cmd
from maskctl.cli import ensemble as ensemble_cmd
from maskctl.cli import eval as eval_cmd
from maskctl.cli import export as export_cmd
from maskctl.cli import inspect as inspect_cmd
from maskctl.cli import predict as predict_cmd
from maskctl.cli import push as push_cmd
from maskctl.cli import serve as serve_cmd
from maskctl.cli import size as size_cmd
from maskctl.cli import tasks as tasks_cmd
from maskctl.cli import train as train_cmd
from maskctl.cli.console import print_error
from maskctl.cli.help import Group, command
from maskctl.version import __version__

app = typer.Typer(
    name="maskctl",
    cls=Group,
    help="Learn binary masks over a frozen pretrained transformer: one base model, one tiny mask per task.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
_state = {"debug": os.environ.get("MASKCTL_DEBUG", "") not in ("", "0")}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"maskctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    _state["debug"] = _state["debug"] or debug


for name, run in (
    ("train", train_cmd.train),
    ("eval", eval_cmd.eval_bundle),
    ("tasks", tasks_cmd.list_tasks),
    ("inspect", inspect_cmd.inspect_bundle),
    ("size", size_cmd.size),
    ("ensemble", ensemble_cmd.ensemble),
    ("export", export_cmd.export),
    ("predict", predict_cmd.predict),
    ("push", push_cmd.push),
    ("serve", serve_cmd.serve),
):
    command(app, name, run)
app.add_typer(analyze_cmd.app, name="analyze")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from maskctl.errors import MaskctlError

    try:
        app(args=argv, prog_name="maskctl")
    except MaskctlError as exc:
        if _state["debug"]:
            raise
        print_error(exc.message, exc.fix)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print_error("interrupted", None)
        sys.exit(130)
