"""``serve``: load the bundles, then run the app under uvicorn until SIGTERM or Ctrl-C.

SIGTERM drains: uvicorn stops accepting connections, readiness turns 503, requests in flight
(queued or computing) are answered, the batcher stops, and the process exits 0, all within
``--drain-seconds``: what is still queued then fails, and connections left are closed. Scale-out is
replicas of this process behind any load balancer: it keeps no state but its bundle folder.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import socket
from collections.abc import Callable

import uvicorn

from maskctl.bundle.format import read_meta
from maskctl.bundle.hub_ref import resolve_bundle_ref
from maskctl.errors import BundleError, MaskctlError
from maskctl.schema import check_fields
from maskctl.serving.http.app import ServerState, create_app
from maskctl.serving.http.batcher import compute_thread
from maskctl.serving.http.folder import BundleFolder, entry_problem
from maskctl.serving.http.header_cap import protocol_options
from maskctl.serving.http.metrics import ServerMetrics
from maskctl.serving.http.settings import ServeSettings
from maskctl.serving.model import MaskedModel, common_reference

log = logging.getLogger("maskctl.serve")


def build_state(settings: ServeSettings) -> ServerState:
    """Check the settings, load the base model and every bundle. In a folder, a bundle that
    fails is refused with a log line and the rest are served; bundle files given one by one
    must all load."""
    settings.check()
    folder = settings.folder
    files = sorted(folder.glob("*.bundle")) if folder else [resolve_bundle_ref(p) for p in settings.paths]
    if not files:
        raise MaskctlError(
            f"{folder} holds no *.bundle file",
            "train one there: maskctl train --output "
            f"{folder}/<task>.bundle (the server also loads bundles added later)",
        )
    metrics = ServerMetrics()
    compute = compute_thread()
    try:
        if settings.threads:
            import torch

            compute.submit(torch.set_num_threads, settings.threads).result()
        # A link loop, a dangling link, a FIFO (whose reader would wait forever): refused, never opened.
        unusable = [path for path in files if folder is not None and entry_problem(path) is not None]
        reference = common_reference(_metas([p for p in files if p not in unusable]))  # most of the folder's mask
        model, first, refused = None, None, [(path, None) for path in unusable]
        for path in files:  # the first bundle that loads names the base model
            if path in unusable:
                continue
            try:
                model = compute.submit(
                    MaskedModel.from_bundles, [path], model=settings.model, device=settings.device, reference=reference
                ).result()
                first = path
                break
            except Exception as exc:
                if folder is None:
                    if isinstance(exc, MaskctlError):
                        raise
                    raise BundleError(
                        f"{path} cannot be loaded ({type(exc).__name__}: {exc})",
                        "check the file (maskctl inspect), or train it again",
                    ) from exc
                refused.append((path, exc))
        if model is None:
            for path, exc in refused:
                log.warning(
                    "refused bundle %s: %s", path.name, entry_problem(path) or getattr(exc, "message", repr(exc))
                )
            raise MaskctlError(f"no bundle in {folder} could be loaded", "see the lines above for each file")
        bundles = BundleFolder(model, folder, compute, metrics)
        for path, exc in refused:  # logged once; the watcher retries them only when they change
            bundles.refuse(path, exc)
        bundles.adopt(first, model.tasks[0])
        for path in files[files.index(first) + 1 :]:
            if path not in unusable and bundles.load_now(path) is None and folder is None:
                raise MaskctlError(f"{path}: {bundles.refused[path.resolve()]}", "serve only bundles that load")
    except BaseException:
        compute.shutdown()
        raise
    return ServerState(settings, model, compute, metrics, folder=bundles)


def _metas(files):
    """The stored descriptions of the files that can be read (a bad one is refused later, alone)."""
    for path in files:
        try:
            yield read_meta(path)
        except (MaskctlError, OSError, ValueError):
            continue


def serve(settings: ServeSettings, on_ready: Callable[[str, list[str]], None] | None = None) -> None:
    """Run the server in this thread until SIGTERM (drain, then return) or Ctrl-C. The port is
    bound first: a port in use fails in a second, not after every bundle has loaded."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    check_fields(settings)  # the port's range; build_state checks the rest
    sock = bind_port(settings.host, settings.port)
    try:
        state = build_state(settings)
    except BaseException:
        sock.close()
        raise
    config = uvicorn_config(state)
    try:
        _Server(config, state, on_ready).run(sockets=[sock])
    finally:
        state.close(state.drain_left() + 1.0)


def bind_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` as uvicorn binds one (IPv6 for an address with a colon,
    ``SO_REUSEADDR`` so a restart does not wait out TIME_WAIT); uvicorn listens on it once the
    bundles are loaded. A port in use is a ``MaskctlError`` naming ``--port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise MaskctlError(
                f"port {port} on {host} is in use by another process",
                f"pick a free one with --port (e.g. --port {port + 1 if port < 65535 else 8000}), "
                "or stop the other server",
            ) from None
        raise MaskctlError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc})",
            "check --host (an address of this machine) and --port",
        ) from None
    return sock


def uvicorn_config(state: ServerState, **overrides) -> uvicorn.Config:
    """uvicorn's settings for ``state``: the app, the bind, the drain bound and the bounded
    request head (``header_cap.py``)."""
    s = state.settings
    options = {
        "host": s.host,
        "port": s.port,
        "access_log": False,
        "log_level": s.log_level,
        "lifespan": "on",
        "timeout_graceful_shutdown": s.drain_seconds,
        **protocol_options(s.max_header_kb * 1024),
        **overrides,
    }
    return uvicorn.Config(create_app(state), **options)


class _Server(uvicorn.Server):
    """uvicorn's server, with a drain that ends in exit code 0 and a line once it listens."""

    def __init__(self, config: uvicorn.Config, state: ServerState, on_ready) -> None:
        super().__init__(config)
        self.state, self.on_ready = state, on_ready

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started and self.on_ready is not None:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            self.on_ready(f"http://{f'[{host}]' if ':' in host else host}:{port}", self.state.model.tasks)

    def handle_exit(self, sig, frame) -> None:
        self.state.begin_drain()  # readiness fails from now on
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self):
        with super().capture_signals():
            yield
            # SIGTERM asked for a drain, and it is done: exit 0 instead of dying of the signal
            # uvicorn would raise again. Ctrl-C still ends as an interrupt.
            self._captured_signals[:] = [s for s in self._captured_signals if s != signal.SIGTERM]
