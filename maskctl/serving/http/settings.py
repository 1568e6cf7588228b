"""``ServeSettings``: every knob of ``maskctl serve``, each with its help text and bound.

Declared with ``maskctl.schema.setting``: the CLI's options are generated from these fields
(``maskctl/cli/options.py``), so a new setting is one field here.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from maskctl.bundle.hub_ref import is_hub_ref, parse_hub_ref
from maskctl.choices import DEVICE_HELP, DEVICE_METAVAR, RAY_ADDRESS_HELP
from maskctl.errors import MaskctlError
from maskctl.schema import check_fields, setting

API_KEY_ENV = "MASKCTL_API_KEY"
NET, BATCH, RAY = "Network and access", "Batching and compute", "Replicas on Ray Serve (--ray)"


@dataclass
class ServeSettings:
    """What ``maskctl serve`` runs with; ``check`` validates it before any model is loaded."""

    paths: list[str] = setting(
        [],
        "A folder of *.bundle files (watched), or bundle files (or hf://user/name references).",
        metavar="FOLDER|BUNDLE...",
    )
    model: str | None = setting(None, "Base model (default: the one the bundles name).")
    device: str = setting("auto", DEVICE_HELP, metavar=DEVICE_METAVAR)
    host: str = setting(
        "127.0.0.1", "Address to bind; a non-loopback address needs --api-key or --insecure.", panel=NET
    )
    port: int = setting(8000, "Port to bind (0: any free port).", min=0, max=65535, panel=NET)
    max_batch: int = setting(32, "Inputs gathered into one mixed-task batch at most.", min=1, panel=BATCH)
    max_wait_ms: float = setting(
        5.0, "How long the first request of a batch waits for others (ms).", min=0.0, panel=BATCH
    )
    max_batch_tokens: int = setting(
        16384,
        "Token budget of one batch: rows x longest row (a padded batch's "
        "compute); a batch closes before the next input would pass it.",
        min=1,
        panel=BATCH,
    )
    max_client_batch_size: int = setting(
        1024,
        "Inputs one request may carry; more get 413 with the limit. A "
        "large request is split into batches taken in turn with other "
        "clients' requests.",
        min=1,
        panel=BATCH,
    )
    max_concurrent_requests: int = setting(
        512,
        "Prediction requests answered at once; beyond it, 429 with "
        "Retry-After (counted in maskctl_rejected_requests_total).",
        min=1,
        panel=BATCH,
    )
    pin: list[str] = setting(
        [],
        "Deprecated since 0.2.0, removed in 0.3.0: every loaded task is held hot in one "
        "form, so there is nothing to pin.",
        metavar="TASK",
        panel=BATCH,
    )
    api_key: str | None = setting(
        None, f"Require 'Authorization: Bearer KEY' on every endpoint but the probes (or set {API_KEY_ENV}).", panel=NET
    )
    cors_allow_origin: list[str] = setting(
        [],
        "Let browser pages of this origin call the API (CORS), e.g. "
        "https://app.example.com; repeatable, '*' for any (off by default).",
        metavar="ORIGIN",
        panel=NET,
    )
    insecure: bool = setting(False, "Allow binding a non-loopback address without an API key.", panel=NET)
    admin: bool = setting(False, "Enable the endpoints that load and unload bundles of the served folder.", panel=NET)
    max_body_kb: int = setting(1024, "Largest request body accepted (KiB); bigger ones get 413.", min=1, panel=NET)
    max_header_kb: int = setting(
        64,
        "Largest request line and headers accepted (KiB); bigger ones get 431 before they are buffered.",
        min=1,
        panel=NET,
    )
    drain_seconds: float = setting(
        25.0,
        "On SIGTERM, how long requests in flight may take to finish before "
        "the connections left are closed and the server exits 0 (under "
        "Kubernetes' default 30 s grace).",
        min=0.0,
        panel=NET,
    )
    watch_seconds: float = setting(
        2.0, "How often the served folder is checked for added or removed bundles (0: never).", min=0.0
    )
    cache_mb: float | None = setting(
        None,
        "Deprecated since 0.2.0, removed in 0.3.0: there is no cache of "
        "decoded masks any more (every task is held as its flips).",
        min=0.0,
        panel=BATCH,
    )
    threads: int | None = setting(
        None,
        "Torch threads for inference (default: torch's, one per core; with --ray, "
        "1); fewer leave cores to the HTTP side, or to other replicas on the "
        "machine. With --ray also the CPUs Ray reserves for each replica.",
        min=1,
        panel=BATCH,
    )
    log_level: str = setting("info", "How much the server logs.", choices=("debug", "info", "warning", "error"))
    ray: bool = setting(
        False,
        "Serve as a Ray Serve deployment (needs maskctl's ray extra): --replicas copies of "
        "this server, each with the model and its batcher, behind Ray's HTTP proxy on --host "
        "and --port.",
        panel=RAY,
    )
    replicas: int = setting(
        1,
        "With --ray: how many replicas (each loads the folder, which on a cluster must be "
        "shared storage at the same path on every node).",
        min=1,
        panel=RAY,
    )
    ray_address: str | None = setting(None, RAY_ADDRESS_HELP, panel=RAY)

    def check(self) -> ServeSettings:
        """Bounds, the folder or files, and the rule that a server reachable from other
        machines needs a key; the key falls back to ``$MASKCTL_API_KEY``."""
        check_fields(self)
        if not self.paths:
            raise MaskctlError("no bundle given", "pass a folder of *.bundle files, e.g. maskctl serve masks/")
        for path in self.paths:
            if is_hub_ref(path):
                parse_hub_ref(path)  # the syntax now; run.build_state downloads it
            elif not Path(path).exists():
                raise MaskctlError(f"{path} does not exist", "pass a folder of *.bundle files or bundle files")
        if len(self.paths) > 1 and any(Path(p).is_dir() for p in self.paths):
            raise MaskctlError("give one folder, or bundle files, not both", "e.g. maskctl serve masks/")
        for old, value in (("--cache-mb", self.cache_mb), ("--pin", self.pin)):
            if value:
                logging.getLogger("maskctl.serve").warning(
                    "%s is deprecated since maskctl 0.2.0 and has no effect (every task is held hot as its flips); "
                    "it is removed in 0.3.0",
                    old,
                )
        self.api_key = self.api_key or os.environ.get(API_KEY_ENV) or None
        if not self.api_key and not self.insecure and not is_loopback(self.host):
            raise MaskctlError(
                f"refusing to serve on {self.host} without an API key",
                f"pass --api-key (or set {API_KEY_ENV}), or --insecure if the network is trusted",
            )
        self.cors_allow_origin = list(self.cors_allow_origin or [])  # the CLI gives None when not given
        for origin in self.cors_allow_origin:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
                raise MaskctlError(
                    f"--cors-allow-origin {origin!r} is not an origin",
                    "give scheme and host (and port), e.g. https://app.example.com, or '*'",
                )
        if not self.ray and (self.replicas != 1 or self.ray_address):
            raise MaskctlError(
                f"--{'replicas' if self.replicas != 1 else 'ray-address'} applies to --ray",
                "add --ray to serve on Ray Serve, or drop it",
            )
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
