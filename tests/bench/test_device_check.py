"""The prepared GPU check runs anywhere: without CUDA it says so and exits 0 before loading a model."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the check would run for minutes")
def test_device_check_without_a_gpu_says_so_and_exits_0():
    proc = subprocess.run(
        ["bash", str(REPO / "bench" / "device_check.sh")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA device is present here" in proc.stdout
