"""Joining Ray, for the two features that run on it (sweeps as Tune trials, ``serve --ray``).

Why one place: both must join a cluster the same way and, when none is named, start a Ray
instance of this machine that listens on 127.0.0.1 only (no dashboard), so that nothing a test or
a laptop run starts is reachable from outside. Ray is imported only when asked.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any

from maskctl.errors import MissingExtra


def require_ray(feature: str, module: str, extra_spec: str) -> Any:
    """``ray`` with ``module`` (``ray.tune``, ``ray.serve``) importable, or one clear error
    naming the extra: ``feature`` is what the user asked for."""
    try:
        import ray

        importlib.import_module(module)  # a bare ray lacks the extra's dependencies
    except ImportError:
        raise MissingExtra(feature, extra_spec, "ray") from None
    return ray


def connect(address: str | None) -> None:
    """Join the cluster at ``address`` (``auto``, ``HOST:PORT``, ``ray://...``; None:
    ``$RAY_ADDRESS``), else start a Ray instance of this machine for this process: on 127.0.0.1
    only, no dashboard, up until the process ends. A Ray already initialised here is used as is."""
    import ray

    if ray.is_initialized():
        return
    if address is None and not os.environ.get("RAY_ADDRESS"):
        ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False, logging_level=logging.WARNING)
    else:
        ray.init(address=address, logging_level=logging.WARNING)
