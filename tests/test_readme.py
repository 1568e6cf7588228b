"""Every shell line of the README, run as written, in order, in one fresh folder (as the
examples test runs ``examples/``): a newcomer following the README section by section.

Four things differ from a user's machine, and only these: the packaged MiniLM is replaced by a
tiny random BERT with the same alias, and each split of a shipped task by 48 (train) or 24 of its
examples, taken evenly and read once a process (``sitecustomize.py`` on ``PYTHONPATH`` patches
them as they are imported, so ``maskctl``, ``torchrun -m maskctl`` and ``python -`` all see
them); the server listens on a free loopback port
(``localhost:8000`` is rewritten to it); and the files the README calls the user's own
(``train.csv``, ``requests.jsonl``) are written first. A line that cannot run here says why in its
own comment or the comment line above it ("needs the Hub", "needs a GPU", ...); the test checks
that every skipped line says so, and that most lines ran. Setup lines (``make``, ``pip install``)
are what the suite itself was installed by.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import build_tiny_model

README = Path(__file__).resolve().parents[1] / "README.md"
SAYS_WHY = ("needs ", "edits your shell", "takes hours")
SETUP = ("make ", "pip install")
SHIM = '''
"""Patches applied as maskctl's modules are first imported (nothing is imported early: a
process that never loads a model stays as light as it is for a user)."""
import copy
import os
import sys

_tiny = os.environ["MASKCTL_README_TINY_MODEL"]


def _models(module):
    module._packaged = lambda alias: module.ModelSource(spec=alias, kind="package", location=_tiny, version="tiny")


def _task(module):
    read, kept = module.read_split, {}

    def few(card, split, data_dir=None):  # every n-th example: all labels, a few seconds a run
        shipped = data_dir is None and card.source.get("reader") == "packaged"
        if not shipped or (card.name, split) not in kept:
            examples = read(card, split, data_dir)
            keep = 48 if split == "train" else 24
            examples = examples[::max(1, len(examples) // keep)][:keep]
            if not shipped:
                return examples
            kept[card.name, split] = examples
        # A shipped corpus is read and split once a process: a sweep or an analysis reads it again
        # for every run (its 2,000-odd files each time); each run gets its own copy of the same rows.
        return copy.deepcopy(kept[card.name, split])

    module.read_split = few


class _Patches:
    patches = {"maskctl.models": _models, "maskctl.tasks.task": _task}

    def find_spec(self, name, path=None, target=None):
        if name not in self.patches:
            return None
        for finder in sys.meta_path:
            spec = None if finder is self else getattr(finder, "find_spec", lambda *a: None)(name, path, target)
            if spec is not None:
                run, patch = spec.loader.exec_module, self.patches[name]
                spec.loader.exec_module = lambda module: (run(module), patch(module))
                return spec
        return None


sys.meta_path.insert(0, _Patches())
'''


def readme_commands(text: str) -> list[tuple[str, str]]:
    """(command, what its comments say) for each command of the README's bash blocks: joined
    across ``\\`` continuations and ``<<'PY'`` here-documents."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        lines, above, i = block.split("\n"), "", 0
        while i < len(lines):
            line = lines[i]
            i += 1
            if not line.strip():
                continue
            if line.lstrip().startswith("#"):
                above = line
                continue
            while line.endswith("\\") and i < len(lines):
                line = line[:-1] + " " + lines[i].strip()
                i += 1
            heredoc = re.search(r"<<'(\w+)'", line)
            if heredoc:
                body = []
                while i < len(lines) and lines[i] != heredoc.group(1):
                    body.append(lines[i])
                    i += 1
                i += 1
                line = "\n".join([line, *body, heredoc.group(1)])
            comment = line.split("  # ", 1)[1] if "  # " in line.split("\n")[0] else ""
            commands.append((line, comment + " " + above))
            above = ""
    return commands


def test_the_readme_lists_its_commands():
    commands = readme_commands(README.read_text(encoding="utf-8"))
    assert len(commands) > 50
    assert any(c.startswith("python - <<'PY'") and c.endswith("\nPY") for c, _ in commands)
    skipped = [c for c, why in commands if any(w in why for w in SAYS_WHY)]
    assert 5 <= len(skipped) <= 15, skipped  # the lines that cannot run offline say so, and no more


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, server: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"maskctl serve exited: {server.stdout.read() if server.stdout else ''}")
        try:
            with urllib.request.urlopen(url + "/ready", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("maskctl serve did not become ready")


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None, reason="needs bash and curl")
def test_every_readme_line_runs_as_written(tmp_path_factory):
    tiny = build_tiny_model(
        "bert", tmp_path_factory.mktemp("readme-model") / "minilm", positions=512, layers=6
    )  # MiniLM has 6 blocks
    shim = tmp_path_factory.mktemp("readme-shim")
    (shim / "sitecustomize.py").write_text(SHIM, encoding="utf-8")
    work = tmp_path_factory.mktemp("readme-user")
    (work / "train.csv").write_text(
        "review,stars\n"
        + "".join(f"{'a fine film' if i % 2 else 'a dull film'} {i},{5 if i % 2 else 1}\n" for i in range(80)),
        encoding="utf-8",
    )
    (work / "requests.jsonl").write_text(
        '{"text": "Shares fell in London"}\n{"tokens": ["I", "saw", "Taylor"]}\nChelsea won the cup final\n',
        encoding="utf-8",
    )
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(shim), str(README.parent)]),
        "MASKCTL_README_TINY_MODEL": str(tiny),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "COLUMNS": "80",
        "RAY_USAGE_STATS_ENABLED": "0",
    }  # Ray (Scaling out) starts a 127.0.0.1-only instance; nothing reported
    env.pop("MASKCTL_DEBUG", None)
    ran, server = [], None
    try:
        for command, why in readme_commands(README.read_text(encoding="utf-8")):
            if any(w in why for w in SAYS_WHY) or command.startswith(SETUP):
                continue
            command = command.replace("localhost:8000", f"127.0.0.1:{port}")
            if command.startswith("maskctl serve"):
                if server is not None:  # a later server (Scaling out: on Ray) takes the port over
                    server.terminate()
                    server.wait(timeout=60)
                server = subprocess.Popen(
                    ["bash", "-c", f"exec {command.split('  #')[0]} --port {port}"],
                    cwd=work,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
                _wait_ready(f"http://127.0.0.1:{port}", server)
                ran.append(command)
                continue
            started = time.monotonic()
            done = subprocess.run(
                ["bash", "-e", "-c", command],
                cwd=work,
                env=env,
                check=False,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
            assert "Traceback" not in done.stderr, f"{command}\n{done.stderr[-3000:]}"
            if command.startswith("curl"):
                json.loads(done.stdout)  # an answer, not an error page
                assert '"error' not in done.stdout, f"{command}\n{done.stdout}"
            ran.append(command)
            print(f"{time.monotonic() - started:5.1f} s  {command[:100]}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
    assert len(ran) >= 35, ran
    assert (work / "masks" / "bbc-news-minilm.bundle").is_file() and (
        work / "exported" / "news" / "config.json"
    ).is_file()
    assert len(list((work / "ensemble").glob("news-s*.bundle"))) == 4
    assert (work / "docs" / "figures" / "tsne").is_dir()
