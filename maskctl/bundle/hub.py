"""Put a bundle on the Hugging Face Hub: ``maskctl push BUNDLE --repo-id user/name``.

Why a bundle and a card in one commit: the repo's ``README.md`` describes the bundle beside it
(``model_card.bundle_card``), and one commit means nobody ever downloads a bundle whose card
describes another. The bundle is read in full first (every mask decoded and CRC-checked), so a
damaged file is never uploaded. Everything goes through ``huggingface_hub.HfApi``
(``create_repo(exist_ok=True)``, ``create_branch`` for another branch, ``create_commit``); its
errors come back as one-line ``HubError``s. Read it back anywhere as ``hf://user/name``
(``hub_ref.py``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from maskctl.bundle.format import load_bundle, write_shareable
from maskctl.bundle.hub_ref import HubRef, network_errors, offline, parse_hub_ref
from maskctl.bundle.model_card import bundle_card
from maskctl.errors import HubError

CARD = "README.md"


@dataclass(frozen=True)
class Pushed:
    """What was committed, and the reference that reads the bundle back."""

    ref: HubRef
    commit_url: str
    files: tuple[str, ...]


def push_bundle(
    path: str | Path,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> Pushed:
    """Upload ``path`` and its model card to the model repo ``repo_id`` (created if missing) on
    branch ``revision`` (created from main if missing; default main), in one commit.
    ``token`` and ``endpoint`` default to huggingface_hub's own (``HF_TOKEN`` or the saved
    login, ``HF_ENDPOINT``)."""
    from huggingface_hub import HfApi

    repo = _repo(repo_id, revision)
    if offline():
        raise HubError("cannot push while HF_HUB_OFFLINE=1", "unset HF_HUB_OFFLINE (pushing needs the network)")
    bundle = load_bundle(path)  # the whole file, every mask checked, before anything is sent
    local = Path(bundle.path)
    api = HfApi(endpoint=endpoint, token=token)
    message = commit_message or f"Upload {local.name} ({bundle.task_name}) with maskctl"
    with tempfile.TemporaryDirectory(prefix="maskctl-push-") as tmp:
        shared = write_shareable(local, Path(tmp) / local.name)  # without this machine's path hints
        card = bundle_card(
            bundle.meta,
            repo_id=repo.repo_id,
            filename=local.name,
            file_bytes=shared.stat().st_size,
            revision=repo.revision,
        )
        return _commit(api, repo, private, message, shared, card, endpoint)


def _commit(api, repo: HubRef, private: bool, message: str, local: Path, card: str, endpoint: str | None) -> Pushed:
    from huggingface_hub import CommitOperationAdd, constants

    try:
        api.create_repo(repo.repo_id, private=private or None, exist_ok=True, repo_type="model")
        if repo.revision and repo.revision != constants.DEFAULT_REVISION:
            api.create_branch(repo.repo_id, branch=repo.revision, exist_ok=True, repo_type="model")
        info = api.create_commit(
            repo.repo_id,
            repo_type="model",
            revision=repo.revision,
            commit_message=message,
            operations=[
                CommitOperationAdd(path_in_repo=local.name, path_or_fileobj=str(local)),
                CommitOperationAdd(path_in_repo=CARD, path_or_fileobj=card.encode("utf-8")),
            ],
        )
    except Exception as exc:
        raise _push_error(repo, exc, endpoint) from exc
    return Pushed(
        ref=HubRef(repo.repo_id, None, repo.revision), commit_url=str(info.commit_url), files=(local.name, CARD)
    )


def _repo(repo_id: str, revision: str | None) -> HubRef:
    """``repo_id`` checked with the same rule as ``hf://`` references."""
    try:
        repo = parse_hub_ref(f"hf://{repo_id}")
    except HubError:
        repo = None
    if repo is None or repo.filename or repo.revision:
        raise HubError(f"--repo-id {repo_id!r} is not a Hub repo id", "write user/name, e.g. --repo-id alice/news-mask")
    if revision is not None and (not revision.strip() or "@" in revision):
        raise HubError(f"--revision {revision!r} is not a branch name", "e.g. --revision main or --revision v1")
    return HubRef(repo.repo_id, None, revision or None)


def _push_error(repo: HubRef, exc: Exception, endpoint: str | None) -> HubError:
    from huggingface_hub import constants
    from huggingface_hub import utils as errors

    where = endpoint or constants.ENDPOINT
    if isinstance(exc, errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            return HubError(
                f"the Hub refused to write to {repo.repo_id} (HTTP {status})",
                "log in with a write token (hf auth login), or pass --token / set HF_TOKEN",
            )
        detail = (getattr(exc, "server_message", None) or str(exc)).splitlines()[0][:160]
        return HubError(
            f"pushing to {repo.repo_id} failed: HTTP {status}: {detail}",
            "check --repo-id and --revision, and try again",
        )
    if isinstance(exc, ValueError) and "README.md" in str(exc):
        return HubError(
            f"the Hub refused the model card: {str(exc).splitlines()[-1]}", "this is a maskctl bug; please report it"
        )
    if isinstance(exc, network_errors()):
        return HubError(f"cannot reach the Hub at {where}", "check the network (or HF_ENDPOINT) and try again")
    raise exc
