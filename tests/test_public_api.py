"""The names `maskctl` exports resolve, lazily: importing the package stays cheap."""

from __future__ import annotations

import subprocess
import sys

import maskctl


def test_every_public_name_resolves():
    for name in maskctl.__all__:
        assert getattr(maskctl, name) is not None, name


def test_import_is_cheap():
    code = "import sys, maskctl; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_all_lists_exactly_the_lazy_names():
    """``__all__`` is a literal (what linters and type checkers read); the lazy tables are what resolves."""
    import maskctl.serving

    assert sorted(maskctl.__all__) == sorted(["__version__", *maskctl._LAZY])
    assert sorted(maskctl.serving.__all__) == sorted(maskctl.serving._HOMES)
