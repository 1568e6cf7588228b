"""Run ``maskctl`` in this process as a fresh ``python -m maskctl`` would run it, and answer with
the ``subprocess.CompletedProcess`` a real run gives (exit code, stdout, stderr), in a fraction
of the time: no interpreter start and no torch/transformers import per command.

What a fresh process would set up at start-up is set up again for each run, and put back after:

- ``maskctl.cli.main`` runs, so a ``MaskctlError`` becomes its one red line and exit code, a
  ``typer.Exit``/``sys.exit`` its code, and any other exception a traceback on stderr, exit 1;
- stdout/stderr are pipes (click's ``CliRunner.isolation``: not a terminal), the environment
  gets ``COLUMNS`` and the offline switches, and ``cwd`` is entered;
- the shared rich consoles are constructed again inside that isolation (as at import in a new
  process: their width from ``COLUMNS``, their colour system from the non-terminal pipe);
- ``--debug`` state is read from ``MASKCTL_DEBUG`` as at import, not left over from a run before;
- Python warnings use the interpreter's default filters and print to stderr, and log records
  with no handler of their own reach stderr through logging's last-resort handler, as they
  would in a process that configured nothing.

What stays a real subprocess (a console script, ``python -m``, an interpreter's own traceback,
import-time isolation) is tested with ``subprocess`` in ``test_cli.py`` and ``test_help.py``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path

import click.formatting
from typer.testing import CliRunner

ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "COLUMNS": "200"}
# The filters of a fresh interpreter with no -W and no PYTHONWARNINGS (the warnings module's
# defaults, newest first): what a user's `maskctl` shows on stderr.
DEFAULT_FILTERS = (
    ("default", DeprecationWarning, "__main__"),
    ("ignore", DeprecationWarning, None),
    ("ignore", PendingDeprecationWarning, None),
    ("ignore", ImportWarning, None),
    ("ignore", ResourceWarning, None),
)


@contextlib.contextmanager
def _fresh_start() -> Iterator[None]:
    """Inside ``CliRunner.isolation``: consoles, debug flag, warnings and logging as a new process
    has them; everything put back afterwards."""
    from maskctl import cli
    from maskctl.cli import console as consoles

    saved = {c: dict(vars(c)) for c in (consoles.console, consoles.err_console)}
    debug = dict(cli._state)
    forced_width = click.formatting.FORCED_WIDTH
    root = logging.getLogger()
    try:
        click.formatting.FORCED_WIDTH = None  # CliRunner's 80: a real process wraps plain help at COLUMNS
        consoles.console.__init__()
        consoles.err_console.__init__(stderr=True)
        cli._state["debug"] = os.environ.get("MASKCTL_DEBUG", "") not in ("", "0")
        root.addHandler(logging.lastResort)
        with warnings.catch_warnings(record=True) as caught:
            warnings.resetwarnings()
            for action, category, module in reversed(DEFAULT_FILTERS):
                warnings.filterwarnings(action, category=category, module=module or "")
            try:
                yield
            finally:
                for w in caught:
                    sys.stderr.write(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line))
    finally:
        root.removeHandler(logging.lastResort)
        click.formatting.FORCED_WIDTH = forced_width
        cli._state.clear()
        cli._state.update(debug)
        for console, state in saved.items():
            vars(console).clear()
            vars(console).update(state)


def _exit_code(code: object) -> int:
    """``sys.exit(code)`` as the interpreter turns it into a process's exit status."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


def run_in_process(
    *args: object, cwd: str | Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``maskctl ARGS`` in this process; the same answer as ``subprocess.run([... "maskctl", ...])``."""
    from maskctl.cli import main

    argv = [str(a) for a in args]
    code = 0
    here = os.getcwd()
    with CliRunner().isolation(env={**ENV, **(env or {})}) as (stdout, stderr, _):
        with _fresh_start():
            try:
                if cwd is not None:
                    os.chdir(cwd)
                main(argv)
            except SystemExit as exit_:
                code = _exit_code(exit_.code)
            except Exception:  # noqa: BLE001 - not caught by main: the interpreter prints it and exits 1
                sys.stderr.write(traceback.format_exc())
                code = 1
            finally:
                os.chdir(here)
        sys.stdout.flush()
        sys.stderr.flush()
        out, err = stdout.getvalue().decode("utf-8", "replace"), stderr.getvalue().decode("utf-8", "replace")
    return subprocess.CompletedProcess(["maskctl", *argv], code, out, err)
