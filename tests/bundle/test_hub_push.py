"""``maskctl push`` and ``hf://`` downloads against a loopback Hub (tests/bundle/fake_hub.py on
127.0.0.1, a free port): what the server receives, and that a bundle pushed once is read back
online and then offline from the Hugging Face cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from huggingface_hub import constants

from maskctl.bundle.format import load_bundle, read_meta, write_shareable
from maskctl.bundle.hub import push_bundle
from maskctl.bundle.hub_ref import resolve_bundle_ref
from maskctl.errors import BundleError, HubError

from .fake_hub import FakeHub

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "bundles" / "keywords-format2.bundle"
TOKEN = "hf_loopback_test_token"


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


@pytest.fixture
def online(tmp_path, monkeypatch):
    """huggingface_hub allowed on the network (only the loopback server is ever addressed), with
    a fresh cache and a token that is not anyone's."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with FakeHub() as hub:
        yield hub


def test_push_commits_the_bundle_and_its_card_in_one_commit_then_reads_it_back(online, monkeypatch, tmp_path):
    pushed = push_bundle(FIXTURE, "alice/kw-mask", endpoint=online.url, token=TOKEN)
    assert str(pushed.ref) == "hf://alice/kw-mask" and pushed.files == ("keywords-format2.bundle", "README.md")
    files = online.files("alice/kw-mask")
    shared = tmp_path / "shared.bundle"
    shared.write_bytes(files["keywords-format2.bundle"])
    assert "/tmp/" not in read_meta(shared).__repr__() and "/tmp/" in read_meta(FIXTURE).__repr__()
    assert {k: v.tolist() for k, v in load_bundle(shared).masks.items()} == {
        k: v.tolist() for k, v in load_bundle(FIXTURE).masks.items()
    }  # the same bundle, without machine paths
    assert online.commits == [
        {
            "header": {"summary": "Upload keywords-format2.bundle (keywords) with maskctl", "description": ""},
            "paths": ["keywords-format2.bundle", "README.md"],
        }
    ]
    card = files["README.md"].decode()
    front = front_matter(card)
    assert front["library_name"] == "maskctl" and front["pipeline_tag"] == "text-classification"
    assert front["tags"] == ["maskctl", "binary-mask", "sequence-classification"] and "base_model" not in front
    assert "maskctl predict hf://alice/kw-mask --text" in card and "/tmp/" not in card  # no path of the old file
    # read back through the Hub (list the repo, download into the cache) ...
    local = resolve_bundle_ref("hf://alice/kw-mask", endpoint=online.url)
    assert local.read_bytes() == files["keywords-format2.bundle"] and str(local).startswith(constants.HF_HUB_CACHE)
    # ... and then with the Hub switched off, from the cache alone
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    before = len(online.requests)
    assert resolve_bundle_ref("hf://alice/kw-mask") == local
    assert resolve_bundle_ref("hf://alice/kw-mask/keywords-format2.bundle") == local
    assert len(online.requests) == before


def test_push_to_a_branch_and_pushing_again(online):
    push_bundle(
        FIXTURE, "alice/kw-mask", endpoint=online.url, token=TOKEN, revision="v1", private=True, commit_message="first"
    )
    assert online.repos["alice/kw-mask"]["private"]
    assert "keywords-format2.bundle" in online.files("alice/kw-mask", "v1")
    assert "keywords-format2.bundle" not in online.files("alice/kw-mask", "main")
    assert "maskctl predict hf://alice/kw-mask@v1 --text" in online.files("alice/kw-mask", "v1")["README.md"].decode()
    push_bundle(FIXTURE, "alice/kw-mask", endpoint=online.url, token=TOKEN, revision="v1")  # repo and branch exist
    assert online.commits[0]["header"]["summary"] == "first" and len(online.commits) == 2
    pushed = online.files("alice/kw-mask", "v1")["keywords-format2.bundle"]
    assert resolve_bundle_ref("hf://alice/kw-mask@v1", endpoint=online.url).read_bytes() == pushed
    with pytest.raises(HubError, match="no revision 'v2'"):
        resolve_bundle_ref("hf://alice/kw-mask@v2", endpoint=online.url)
    with pytest.raises(HubError, match="the Hub has no repo bob/none"):
        resolve_bundle_ref("hf://bob/none", endpoint=online.url)


def test_a_repo_without_a_bundle_and_a_missing_file(online):
    online.add_repo("alice/docs", {"README.md": b"# docs\n"})
    with pytest.raises(HubError) as empty:
        resolve_bundle_ref("hf://alice/docs", endpoint=online.url)
    assert "the repo holds no bundle" in empty.value.message and "maskctl push" in empty.value.fix
    with pytest.raises(HubError, match="has no file 'x.bundle'"):
        resolve_bundle_ref("hf://alice/docs/x.bundle", endpoint=online.url)


def test_refused_offline_and_bad_pushes_are_one_typed_error(online, tmp_path, monkeypatch):
    with FakeHub(refuse_writes=401) as refusing, pytest.raises(HubError) as refused:
        push_bundle(FIXTURE, "alice/kw-mask", endpoint=refusing.url, token=TOKEN)
    assert "HTTP 401" in refused.value.message and "hf auth login" in refused.value.fix
    with pytest.raises(HubError, match="not a Hub repo id"):
        push_bundle(FIXTURE, "alice", endpoint=online.url, token=TOKEN)
    with pytest.raises(HubError, match="not a Hub repo id"):
        push_bundle(FIXTURE, "alice/kw@v1", endpoint=online.url, token=TOKEN)
    junk = tmp_path / "junk.bundle"
    junk.write_bytes(b"\0" * 64)
    with pytest.raises(BundleError, match="not a readable bundle"):
        push_bundle(junk, "alice/junk", endpoint=online.url, token=TOKEN)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match="HF_HUB_OFFLINE=1"):
        push_bundle(FIXTURE, "alice/kw-mask", endpoint=online.url, token=TOKEN)
    assert online.requests == []  # nothing was sent for any of these


def test_cli_push_then_read_online_with_progress_then_offline(online, tmp_path):
    env = {
        **os.environ,
        "HF_ENDPOINT": online.url,
        "HF_HUB_OFFLINE": "0",
        "HF_TOKEN": TOKEN,
        "HF_HUB_CACHE": str(tmp_path / "cli-cache"),
        "HF_DATASETS_OFFLINE": "1",
        "COLUMNS": "200",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TQDM_POSITION": "-1",
    }  # TQDM_POSITION: bars on a pipe too

    def maskctl(*args, **extra):
        return subprocess.run(
            [sys.executable, "-m", "maskctl", *map(str, args)],
            check=False,
            capture_output=True,
            text=True,
            env={**env, **extra},
            cwd=tmp_path,
            timeout=300,
        )

    pushed = maskctl("push", FIXTURE, "--repo-id", "alice/cli", "--commit-message", "from the CLI")
    assert pushed.returncode == 0, pushed.stderr
    assert "pushed keywords-format2.bundle and README.md" in pushed.stdout and "hf://alice/cli" in pushed.stdout
    uploaded = tmp_path / "uploaded.bundle"
    uploaded.write_bytes(online.files("alice/cli")["keywords-format2.bundle"])
    assert uploaded.read_bytes() == write_shareable(FIXTURE, tmp_path / "shared.bundle").read_bytes()
    shown = maskctl("inspect", "hf://alice/cli")
    assert shown.returncode == 0 and "keywords" in shown.stdout, shown.stderr
    assert "keywords-format2.bundle" in shown.stderr and "100%" in shown.stderr  # huggingface_hub's download bar
    offline = maskctl("inspect", "hf://alice/cli", HF_HUB_OFFLINE="1")
    assert offline.returncode == 0 and "keywords" in offline.stdout, offline.stderr
    refused = maskctl("push", FIXTURE, "--repo-id", "alice/cli", HF_HUB_OFFLINE="1")
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert refused.returncode == 2 and len(lines) == 1 and "HF_HUB_OFFLINE=1" in lines[0], refused.stderr
    assert len(online.commits) == 1


@pytest.mark.parametrize(
    "command",
    [
        ["push"],
        ["eval"],
        ["inspect"],
        ["export"],
        ["predict"],
        ["ensemble"],
        ["serve"],
        ["analyze", "diff"],
        ["analyze", "connect"],
        ["analyze", "tsne"],
    ],
)
def test_every_command_that_reads_bundles_says_so_in_its_help(command):
    from typer.testing import CliRunner

    from maskctl.cli import app

    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output  # no help text breaks rich's markup
    assert "hf://user/name" in result.output
