"""``maskctl serve --ray``: the same server as the replicas of a Ray Serve deployment.

Each replica holds one ``MaskedModel`` and runs the very app ``maskctl serve`` runs
(``app.create_app``: the ``/v1``, TEI and OIP v2 routes, probes, metrics, the key/size guard),
mounted through Serve's FastAPI ingress (``serve.ingress`` with the app built in the replica, once
its model is loaded), so there is no second set of routes. Ray's HTTP proxy (on ``--host`` and
``--port``, on every node of a cluster) spreads requests over the replicas.

Batching: each replica keeps maskctl's own batcher (``batcher.py``) rather than ``@serve.batch``.
``@serve.batch`` gathers *calls* of one method up to a count; the batcher gathers *inputs* of any
route and task into mixed-task batches under a token budget, splits a large request so that small
ones ride along (fairness), and runs every torch call on the replica's one compute thread, off the
event loop, so probes and new requests are answered while a batch computes. Every route already
goes through it; ``@serve.batch`` would be a second path with fewer of these properties. Serve's
own per-replica admission (``max_ongoing_requests``) is set to ``--max-concurrent-requests`` so
that requests reach the batcher and the app's 429 stays the one limit.

Readiness: a replica is healthy (Serve's ``check_health``, which Serve polls and which decides
whether the proxy sends it requests) while it serves at least one task and is not draining: the
rule of ``/ready``. A replica whose folder holds no bundle that loads fails to start.

Storage: every replica loads the bundle folder at the same path, and watches it as one server
does (``--watch-seconds``); on a cluster that path is shared storage (NFS, a volume every pod of a
KubeRay cluster mounts). Local paths are made absolute before they are sent to the replicas.

Threads: ``--threads`` (default 1 here) is each replica's torch threads and the CPUs Ray reserves
for it, so Ray places at most cores / threads replicas on a node; with ``--device cuda`` each
replica also reserves one GPU.

Ray is imported only here, and this module only by ``maskctl serve --ray``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import threading
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from maskctl.bundle.hub_ref import is_hub_ref
from maskctl.openmp import VARIABLE
from maskctl.ray_cluster import connect, require_ray
from maskctl.serving.http.settings import ServeSettings

APP_NAME = "maskctl"
log = logging.getLogger("maskctl.serve")


def require_serve() -> Any:
    """``ray.serve``, or one clear error naming the extra."""
    return require_ray("maskctl serve --ray", "ray.serve", "ray[serve]").serve


def deploy(settings: ServeSettings) -> tuple[str, list[str]]:
    """Start (or replace) the deployment: ``--replicas`` replicas behind Ray's HTTP proxy on
    ``--host``/``--port``; returns the URL and the tasks a replica serves, once all are up."""
    serve = require_serve()
    settings = _for_replicas(settings.check())
    connect(settings.ray_address)
    quiet = "DEBUG" if settings.log_level == "debug" else "WARNING"  # Serve's controller and proxy
    logging.getLogger("ray.serve").setLevel(quiet)
    serve.start(http_options={"host": settings.host, "port": settings.port}, logging_config={"log_level": quiet})
    _check_proxy(settings)
    handle = serve.run(
        _application(serve, settings),
        name=APP_NAME,
        route_prefix="/",
        blocking=False,
        logging_config={"log_level": settings.log_level.upper(), "enable_access_log": False},
    )
    tasks = handle.tasks.remote().result()
    host = settings.host
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.port}", tasks


def app(args: dict[str, Any]) -> Any:
    """The deployment as a Serve application builder, for ``serve run`` and a KubeRay
    ``RayService`` (``import_path: maskctl.serving.http.ray:app``): ``args`` are ``maskctl serve``'s
    settings by field name (``paths``, ``replicas``, ``threads``, ``model``, ...; a list as
    ``a,b``), e.g. ``serve run maskctl.serving.http.ray:app paths=/masks replicas=4``. Ray's proxy
    then listens where ``serve run`` or the RayService says (``--host``/``--port`` do not apply),
    so, as for any non-loopback address, an ``api_key`` (or ``$MASKCTL_API_KEY``) or
    ``insecure: true`` is required."""
    from maskctl.errors import MaskctlError

    serve = require_serve()
    settings = _settings_from(args).check()
    if not settings.api_key and not settings.insecure:
        raise MaskctlError(
            "maskctl's Serve application listens where Ray's proxy does, and no API key was given",
            "add api_key (or set MASKCTL_API_KEY), or insecure: true if the network is trusted",
        )
    return _application(serve, _for_replicas(settings))


def _settings_from(args: dict[str, Any]) -> ServeSettings:
    """``ServeSettings`` from a builder's string arguments, each coerced to its field's type."""
    from maskctl.errors import MaskctlError
    from maskctl.schema import did_you_mean

    hints = typing.get_type_hints(ServeSettings)
    values: dict[str, Any] = {}
    for name, value in args.items():
        if name not in hints:
            raise MaskctlError(
                f"unknown setting {name!r} for maskctl's Serve application",
                did_you_mean(name, hints, "use maskctl serve's option names, e.g. paths, replicas"),
            )
        hint = str(hints[name])
        if isinstance(value, str):
            if "list" in hint:
                value = [v for v in value.split(",") if v]
            elif "bool" in hint:
                value = value.lower() in ("1", "true", "yes", "on")
            elif "int" in hint:
                value = int(value)
            elif "float" in hint:
                value = float(value)
        values[name] = value
    return ServeSettings(**{**values, "ray": True})


def _application(serve: Any, settings: ServeSettings) -> Any:
    """The bound deployment: ``--replicas`` replicas, each reserving ``--threads`` CPUs (and a
    GPU on cuda), admitting ``--max-concurrent-requests`` at once, drained for ``--drain-seconds``."""
    gpus = 1 if settings.device.startswith("cuda") else 0
    # each replica is a fresh process: OpenMP's wait policy as maskctl serve's own (maskctl/openmp.py)
    runtime = {"env_vars": {VARIABLE: os.environ.get(VARIABLE, "PASSIVE")}}
    return (
        _replica_class(serve)
        .options(
            num_replicas=settings.replicas,
            ray_actor_options={"num_cpus": settings.threads, "num_gpus": gpus, "runtime_env": runtime},
            max_ongoing_requests=settings.max_concurrent_requests,
            graceful_shutdown_timeout_s=settings.drain_seconds,
            health_check_period_s=2.0,
        )
        .bind(settings)
    )


def _check_proxy(settings: ServeSettings) -> None:
    """Serve already running on this Ray keeps its proxy where it was started: say so, rather
    than announce a URL nobody listens on."""
    from maskctl.errors import MaskctlError

    try:
        from ray.serve.context import _get_global_client

        running = _get_global_client().http_config
    except Exception:  # noqa: BLE001 - a Serve whose internals moved: nothing to compare
        return
    if (running.host, running.port) != (settings.host, settings.port):
        raise MaskctlError(
            f"Ray Serve already runs on this Ray cluster with its HTTP proxy on {running.host}:{running.port}",
            f"pass --host {running.host} --port {running.port}, or stop that Serve first (serve shutdown)",
        )


def undeploy() -> None:
    """Remove the deployment: each replica drains (up to ``--drain-seconds``) and stops."""
    serve = require_serve()
    serve.delete(APP_NAME)


def serve(settings: ServeSettings, on_ready: Callable[[str, list[str]], None] | None = None) -> None:
    """Deploy, then wait here until SIGTERM or Ctrl-C, and remove the deployment (as
    ``serve run`` does); a Ray instance started here ends with the process."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    url, tasks = deploy(settings)
    stop = threading.Event()  # handlers set after ray.init, which installs its own
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if on_ready is not None:
            on_ready(url, tasks)
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    undeploy()
    require_serve().shutdown()


def _for_replicas(settings: ServeSettings) -> ServeSettings:
    """What each replica is sent: local paths made absolute (a replica's working directory is
    not this one's), a free port for ``--port 0`` (Ray's proxy needs one number), and
    ``--threads`` 1 unless given."""

    def absolute(path: str) -> str:
        return path if is_hub_ref(path) or not Path(path).exists() else str(Path(path).resolve())

    port = settings.port or _free_port(settings.host)
    return dataclasses.replace(
        settings,
        paths=[absolute(p) for p in settings.paths],
        port=port,
        model=absolute(settings.model) if settings.model else None,
        threads=settings.threads or 1,
    )


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


_CLASS: list[Any] = []


def _replica_class(serve: Any) -> Any:
    """The deployment class (built once ``ray.serve`` is imported)."""
    if _CLASS:
        return _CLASS[0]

    @serve.deployment(name="maskctl")
    @serve.ingress()
    class MaskctlReplica:
        """One replica: the model and every bundle of the folder, then the server's own app."""

        def __init__(self, settings: ServeSettings) -> None:
            from maskctl.serving.http.run import build_state

            logging.basicConfig(
                level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
            )
            self.state = build_state(settings)

        def __serve_build_asgi_app__(self) -> Any:
            from maskctl.serving.http.app import create_app

            return create_app(self.state)

        def check_health(self) -> None:
            """Healthy while a task is served and the replica is not draining (``/ready``)."""
            if self.state.stopping or not self.state.model.tasks:
                raise RuntimeError("draining" if self.state.stopping else "no task is served")

        def tasks(self) -> list[str]:
            return list(self.state.model.tasks)

    _CLASS.append(MaskctlReplica)
    return MaskctlReplica
