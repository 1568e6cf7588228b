"""A real uvicorn server on a free loopback port, in a thread of the test process (a subprocess
where a signal is the point), driven by a real HTTP client. Nothing leaves 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from maskctl.serving.http.ports import free_port
from maskctl.serving.http.run import _Server, build_state, uvicorn_config
from maskctl.serving.http.settings import ServeSettings

# A bundle copied into a served folder no longer finds its local base model by the path relative
# to where it was trained (bundles store no absolute paths), as on a user's machine: the server
# is told the base (``--model``). Set for every test by ``_served_base``.
SERVED_BASE: dict[str, str] = {}
# The uvicorn server and its thread of each running test server, by port: what a test that
# signals the server (``handle_exit``) or waits for it to end reaches for.
SERVERS: dict[int, tuple[_Server, threading.Thread]] = {}


@pytest.fixture(autouse=True)
def _served_base(tiny_bert):
    SERVED_BASE["model"] = str(tiny_bert)


@contextlib.contextmanager
def running(**settings):
    """Start a server for ``ServeSettings(**settings)`` (on the tiny base unless ``model`` is
    given); yields (base URL, its state)."""
    state = build_state(ServeSettings(**{"port": free_port(), "model": SERVED_BASE["model"], **settings}))
    config = uvicorn_config(state, log_level="warning")
    server = _Server(config, state, None)
    thread = threading.Thread(target=server.run, daemon=True)
    SERVERS[state.settings.port] = (server, thread)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{state.settings.port}", state
    finally:
        server.should_exit = True
        thread.join(30)
        SERVERS.pop(state.settings.port, None)
        state.close()


# What a served process sees: offline, and no API key from the developer's shell.
PROCESS_ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "MASKCTL_API_KEY": ""}


@contextlib.contextmanager
def serve_process(folder: Path, *options: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """``maskctl serve folder`` as its own process on a free port and the tiny base, where the
    CLI's path is the point (options as typer hands them, signals, exit codes); yields (the
    process, its base URL), its stdout and stderr piped apart. Killed if the test left it
    running."""
    port = free_port()
    command = ["serve", str(folder), "--port", str(port), "--model", SERVED_BASE["model"], *options]
    proc = subprocess.Popen(
        [sys.executable, "-m", "maskctl", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=PROCESS_ENV,
    )
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.fixture
def masks(tmp_path, three_tasks):
    """A served folder holding the keywords and conll03 bundles (swag is kept aside to add)."""
    paths, _ = three_tasks
    folder = tmp_path / "masks"
    folder.mkdir()
    for name in ("keywords", "conll03"):
        shutil.copy(paths[name], folder / f"{name}.bundle")
    return folder


@pytest.fixture
def client():
    with httpx.Client(timeout=60) as c:
        yield c


@pytest.fixture(scope="package")
def distil_bundle(tmp_path_factory, tiny_models, keyword_task):
    """The keyword task masked on a tiny DistilBERT: a bundle of another architecture."""
    from maskctl.train_settings import TrainArgs
    from maskctl.training.trainer import train

    out = tmp_path_factory.mktemp("distil") / "distil.bundle"
    train(TrainArgs(model=str(tiny_models["distilbert"]), task=str(keyword_task), output=str(out), max_steps=1))
    return out
