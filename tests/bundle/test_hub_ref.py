"""``hf://user/name[/file.bundle][@revision]``: parsing, and resolving through a populated
Hugging Face cache with the Hub switched off (HF_HUB_OFFLINE=1), in the library and the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import constants

from maskctl.bundle.format import load_bundle, read_meta
from maskctl.bundle.hub_ref import SYNTAX, HubRef, is_hub_ref, parse_hub_ref, resolve_bundle_ref
from maskctl.errors import HubError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "bundles" / "keywords-format2.bundle"
COMMIT = "a" * 40


@pytest.mark.parametrize(
    "text, expected",
    [
        ("hf://alice/kw", HubRef("alice/kw")),
        ("hf://alice/kw/", HubRef("alice/kw")),
        ("hf://alice/kw/kw.bundle", HubRef("alice/kw", "kw.bundle")),
        ("hf://alice/kw/sub/kw.bundle@v1", HubRef("alice/kw", "sub/kw.bundle", "v1")),
        ("hf://alice/kw@refs/pr/1", HubRef("alice/kw", None, "refs/pr/1")),
        ("hf://Org_1/k.w-2@" + COMMIT, HubRef("Org_1/k.w-2", None, COMMIT)),
    ],
)
def test_references_parse(text, expected):
    assert parse_hub_ref(text) == expected
    assert parse_hub_ref(str(expected)) == expected  # printed back in the same syntax


def test_a_path_folded_by_pathlib_still_parses():
    assert str(Path("hf://alice/kw/kw.bundle")) == "hf:/alice/kw/kw.bundle"  # why this case exists
    assert is_hub_ref(Path("hf://alice/kw/kw.bundle"))
    assert parse_hub_ref(Path("hf://alice/kw/kw.bundle@v1")) == HubRef("alice/kw", "kw.bundle", "v1")
    assert not is_hub_ref("masks/kw.bundle") and not is_hub_ref(Path("masks/hf/kw.bundle"))


@pytest.mark.parametrize(
    "text",
    [
        "hf://",
        "hf://alice",
        "hf://alice/",
        "hf:/alice/kw",
        "hf:alice/kw",
        "hf://alice//kw",
        "hf://al ice/kw",
        "hf://alice/kw--x",
        "hf://-alice/kw",
        "hf://alice/kw@",
        "hf://alice/kw/../x.bundle",
        "hf://alice/kw@a@b",
    ],
)
def test_bad_references_say_the_syntax(text):
    with pytest.raises(HubError) as bad:
        parse_hub_ref(text)
    assert text in bad.value.message and SYNTAX in bad.value.fix


def test_plain_paths_pass_through():
    assert resolve_bundle_ref("masks/kw.bundle") == Path("masks/kw.bundle")


def _cache(root: Path, repo: str, files: dict[str, Path | bytes], revision: str = "main", commit: str = COMMIT) -> Path:
    """huggingface_hub's cache layout, by hand: refs/<revision> holds the commit,
    snapshots/<commit>/ the files."""
    storage = root / ("models--" + repo.replace("/", "--"))
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / revision).write_text(commit)
    snapshot = storage / "snapshots" / commit
    for name, content in files.items():
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copy(content, target)
        else:
            target.write_bytes(content)
    return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    _cache(cache, "alice/kw", {"kw.bundle": FIXTURE, "README.md": b"---\nlibrary_name: maskctl\n---\n"})
    _cache(cache, "alice/kw", {"old.bundle": FIXTURE}, revision="v1", commit="b" * 40)
    _cache(cache, "alice/empty", {"README.md": b"nothing here\n"})
    _cache(cache, "alice/two", {"a.bundle": FIXTURE, "b.bundle": FIXTURE})
    return cache


def test_offline_a_cached_bundle_resolves_in_every_form(hub_cache):
    snapshot = hub_cache / "models--alice--kw" / "snapshots"
    assert resolve_bundle_ref("hf://alice/kw") == snapshot / COMMIT / "kw.bundle"  # the repo's only bundle
    assert resolve_bundle_ref("hf://alice/kw/kw.bundle") == snapshot / COMMIT / "kw.bundle"
    assert resolve_bundle_ref(f"hf://alice/kw@{COMMIT}") == snapshot / COMMIT / "kw.bundle"
    assert resolve_bundle_ref("hf://alice/kw@v1") == snapshot / ("b" * 40) / "old.bundle"
    # the library's entry points take references too
    assert read_meta("hf://alice/kw")["task"]["name"] == "keywords"
    assert load_bundle(Path("hf://alice/kw/kw.bundle")).path == snapshot / COMMIT / "kw.bundle"


def test_offline_errors_name_the_problem_and_the_fix(hub_cache):
    with pytest.raises(HubError) as missing:
        resolve_bundle_ref("hf://bob/kw")
    assert missing.value.message == "hf://bob/kw is not in the local Hugging Face cache and HF_HUB_OFFLINE=1"
    assert "once online" in missing.value.fix
    with pytest.raises(HubError, match="not in the local Hugging Face cache"):
        resolve_bundle_ref("hf://alice/kw/other.bundle")
    with pytest.raises(HubError) as empty:
        resolve_bundle_ref("hf://alice/empty")
    assert "the repo holds no bundle" in empty.value.message
    with pytest.raises(HubError) as two:
        resolve_bundle_ref("hf://alice/two")
    assert "2 bundles (a.bundle, b.bundle)" in two.value.message and "hf://alice/two/a.bundle" in two.value.fix


def _maskctl(*args, cache: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_CACHE": str(cache),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "maskctl", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def _one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert all(fragment in lines[0] for fragment in fragments), lines[0]


def test_cli_reads_hub_references_offline(hub_cache, tmp_path):
    shown = _maskctl("inspect", "hf://alice/kw", cache=hub_cache, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "hf://alice/kw" in shown.stdout and "keywords" in shown.stdout and "bits per masked weight" in shown.stdout
    _one_line_error(
        _maskctl("inspect", "hf://bob/kw", cache=hub_cache, cwd=tmp_path),
        "hf://bob/kw is not in the local Hugging Face cache and HF_HUB_OFFLINE=1",
    )
    _one_line_error(_maskctl("inspect", "hf://alice/empty", cache=hub_cache, cwd=tmp_path), "the repo holds no bundle")
    _one_line_error(
        _maskctl("eval", "hf://alice", "--json", tmp_path / "m.json", cache=hub_cache, cwd=tmp_path),
        "not a Hub bundle reference",
        SYNTAX,
    )
    _one_line_error(
        _maskctl("export", "hf://bob/kw", "--output", tmp_path / "out", cache=hub_cache, cwd=tmp_path),
        "not in the local Hugging Face cache",
    )
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "out").exists()  # nothing written


def test_a_downloaded_bundle_serves_and_evaluates_on_the_base_passed_with_model(
    hub_cache, tiny_bert, keyword_task, tmp_path
):
    from maskctl.errors import ModelError
    from maskctl.experiments.evaluate import evaluate_bundle
    from maskctl.serving.model import MaskedModel
    from maskctl.train_settings import TrainArgs
    from maskctl.training.trainer import train

    trained = train(
        TrainArgs(
            model=str(tiny_bert),
            task=str(keyword_task),
            output=str(tmp_path / "kw.bundle"),
            max_steps=2,
            batch_size=8,
            lr=1e-2,
        )
    )
    _cache(hub_cache, "alice/tiny", {"kw.bundle": trained.output}, commit="c" * 40)
    with pytest.raises(ModelError, match="pass --model FOLDER"):  # the trainer's local folder is not known here
        MaskedModel.from_bundles(["hf://alice/tiny"])
    served = MaskedModel.from_bundles(["hf://alice/tiny"], model=str(tiny_bert))
    assert served.tasks == ["keywords"]
    result = evaluate_bundle("hf://alice/tiny", model=str(tiny_bert), data_dir=keyword_task.parent)
    assert result.metrics == trained.metrics and result.bundle.name == "kw.bundle"
