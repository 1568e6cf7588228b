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
