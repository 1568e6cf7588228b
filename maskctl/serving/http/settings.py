"""``ServeSettings``: every knob of ``maskctl serve``, each with its help text and bound.

The CLI's options are generated from these fields (``maskctl/cli/options.py``), so a new
setting is one field here.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path

from maskctl.errors import MaskctlError

API_KEY_ENV = "MASKCTL_API_KEY"


def _f(default, help: str, **bounds):  # noqa: A002 - the dataclass field's help text
    return field(default=default, metadata={"help": help, **bounds})


@dataclass
class ServeSettings:
    """What ``maskctl serve`` runs with; ``check`` validates it before any model is loaded."""

    paths: list[str] = field(default_factory=list, metadata={"help": "A folder of *.bundle files (watched), or bundle files."})
    model: str | None = _f(None, "Base model (default: the one the bundles name).")
    device: str = _f("auto", "auto, cpu or cuda.")
    host: str = _f("127.0.0.1", "Address to bind; a non-loopback address needs --api-key or --insecure.")
    port: int = _f(8000, "Port to bind (0: any free port).", min=0, max=65535)
    max_batch: int = _f(32, "Inputs gathered into one mixed-task batch at most.", min=1)
    max_wait_ms: float = _f(5.0, "How long the first request of a batch waits for others (ms).", min=0.0)
    api_key: str | None = _f(None, f"Require 'Authorization: Bearer KEY' on every endpoint but health "
                                   f"(or set {API_KEY_ENV}).")
    insecure: bool = _f(False, "Allow binding a non-loopback address without an API key.")
    admin: bool = _f(False, "Enable the admin endpoints that load and unload bundles of the served folder.")
    max_body_kb: int = _f(1024, "Largest request body accepted (KiB); bigger ones get 413.", min=1)
    watch_seconds: float = _f(2.0, "How often the served folder is checked for added or removed bundles (0: never).",
                              min=0.0)
    cache_mb: float = _f(512.0, "Memory for decoded mask corrections (MB).", min=1.0)
    threads: int | None = _f(None, "Torch threads for inference (default: torch's, one per core); fewer leave "
                                   "cores to the HTTP side, or to other replicas on the machine.", min=1)
    log_level: str = _f("info", "How much the server logs.", choices=("debug", "info", "warning", "error"))

    def check(self) -> ServeSettings:
        """Bounds, the folder or files, and the rule that a server reachable from other
        machines needs a key; the key falls back to ``$MASKCTL_API_KEY``."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and ("min" in f.metadata and value < f.metadata["min"]
                                      or "max" in f.metadata and value > f.metadata["max"]):
                bound = f"{f.metadata.get('min', '')}..{f.metadata.get('max', '')}"
                raise MaskctlError(f"--{f.name.replace('_', '-')} {value} is out of range", f"give a value in {bound}")
            if "choices" in f.metadata and value not in f.metadata["choices"]:
                raise MaskctlError(f"--{f.name.replace('_', '-')} {value!r} is not known",
                                   f"use one of {', '.join(f.metadata['choices'])}")
        if not self.paths:
            raise MaskctlError("no bundle given", "pass a folder of *.bundle files, e.g. maskctl serve masks/")
        for path in map(Path, self.paths):
            if not path.exists():
                raise MaskctlError(f"{path} does not exist", "pass a folder of *.bundle files or bundle files")
        if len(self.paths) > 1 and any(Path(p).is_dir() for p in self.paths):
            raise MaskctlError("give one folder, or bundle files, not both", "e.g. maskctl serve masks/")
        self.api_key = self.api_key or os.environ.get(API_KEY_ENV) or None
        if not self.api_key and not self.insecure and not is_loopback(self.host):
            raise MaskctlError(f"refusing to serve on {self.host} without an API key",
                               f"pass --api-key (or set {API_KEY_ENV}), or --insecure if the network is trusted")
        return self

    @property
    def folder(self) -> Path | None:
        """The watched folder, when one was given."""
        return Path(self.paths[0]) if len(self.paths) == 1 and Path(self.paths[0]).is_dir() else None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
        except OSError:
            return False
