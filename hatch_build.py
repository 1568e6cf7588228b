"""Build hook: compile the served masks' kernel (``maskctl/masking/kernels/flip_terms.c``) at install.

It is plain C with no Python API, built with the compiler Python itself was built with (or
``$CC``) into ``_flip_terms.so`` beside its source (an editable install) or into the wheel. When
no compiler is found or the build fails, the install goes on without it and serving uses the
plain-PyTorch path (``maskctl/masking/kernels/reference.py``): a warning says so. ``MASKCTL_CFLAGS``
adds flags (e.g. ``-march=native`` for a machine-specific build).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sysconfig
import tempfile
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("maskctl/masking/kernels/flip_terms.c")
LIBRARY = SOURCE.with_name("_flip_terms.so")
FLAGS = ["-O3", "-std=gnu11", "-fPIC", "-shared", "-Wno-psabi"]


def compile_kernel(source: Path, target: Path) -> str | None:
    """Compile ``source`` into ``target`` (written beside it, then renamed over it: a process
    that has the old build loaded keeps reading it); returns None, or why it failed."""
    compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    command = [*compiler, *FLAGS, *shlex.split(os.environ.get("MASKCTL_CFLAGS", "")), "-o", str(partial), str(source)]
    try:
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{command[0]}: {exc}"
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        return (done.stderr.strip().splitlines() or ["failed"])[-1]
    os.replace(partial, target)
    return None


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict) -> None:
        source = Path(self.root) / SOURCE
        if version == "editable":
            target = Path(self.root) / LIBRARY
        else:
            target = Path(tempfile.mkdtemp(prefix="maskctl-kernel-")) / LIBRARY.name
        problem = compile_kernel(source, target)
        if problem:
            self.app.display_warning(
                f"maskctl: the serving kernel was not compiled ({problem}); mixed-task batches will use plain PyTorch"
            )
            return
        if version != "editable":
            build_data["force_include"][str(target)] = str(LIBRARY)
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
