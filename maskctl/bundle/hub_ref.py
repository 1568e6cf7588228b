"""``hf://user/name[/file.bundle][@revision]``: a bundle on the Hugging Face Hub, accepted
wherever a bundle path is (``eval``, ``inspect``, ``predict``, ``ensemble``, ``export``,
``serve``, the analyses, and the Python functions behind them).

Why one function, called by the library: every reader opens a bundle through
``format._check_path`` (``load_bundle``, ``read_meta``, ``read_coded``, ``MaskReader``) and the
entry points that take many bundles call ``resolve_bundle_ref`` before anything else, so a
Python user gets the same references as the command line, parsed and reported the same way.

Files are downloaded by ``huggingface_hub.hf_hub_download`` into its own cache (with its own
progress bars), so a bundle fetched once is found again with ``HF_HUB_OFFLINE=1``. A reference
without a file name means the repo's only ``*.bundle``: listed by the Hub, or offline from the
cached snapshot of that revision (huggingface_hub's documented cache layout:
``models--user--name/refs/<revision>`` holds the commit, ``snapshots/<commit>/`` the files).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

from maskctl.errors import HubError

PREFIX = "hf://"
SYNTAX = "hf://user/name[/file.bundle][@revision]"
EXAMPLE = "e.g. hf://user/news-mask, hf://user/news-mask/news.bundle or hf://user/news-mask@v1"
# The Hub's rule for each half of a repo id: letters, digits, '-', '_', '.'; no '--' or '..';
# '-' and '.' neither first nor last; at most 96 characters.
_NAME = re.compile(r"^(?!.*(--|\.\.))[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class HubRef:
    """A parsed ``hf://`` reference: repo id, optional file in the repo, optional revision."""

    repo_id: str
    filename: str | None = None
    revision: str | None = None

    def __str__(self) -> str:
        return (
            PREFIX
            + self.repo_id
            + (f"/{self.filename}" if self.filename else "")
            + (f"@{self.revision}" if self.revision else "")
        )

    def with_file(self, filename: str) -> HubRef:
        return HubRef(self.repo_id, filename, self.revision)


def is_hub_ref(ref: str | Path) -> bool:
    """Whether ``ref`` is meant as a Hub reference. A ``Path`` of ``hf://a/b`` reads ``hf:/a/b``
    (pathlib folds the double slash), so a Path starting ``hf:/`` counts too."""
    return str(ref).startswith("hf:") if isinstance(ref, str) else str(ref).startswith("hf:/")


def parse_hub_ref(ref: str | Path) -> HubRef:
    """Parse ``hf://user/name[/path/in/repo.bundle][@revision]``; ``HubError`` with the syntax
    for anything else."""
    text = str(ref)
    if isinstance(ref, Path) and text.startswith("hf:/") and not text.startswith(PREFIX):
        text = PREFIX + text[len("hf:/") :]  # undo pathlib's folded slash
    bad = HubError(f"{text!r} is not a Hub bundle reference", f"write {SYNTAX}, {EXAMPLE}")
    if not text.startswith(PREFIX):
        raise bad
    body, at, revision = text[len(PREFIX) :].partition("@")
    if at and (not revision or revision != revision.strip() or "@" in revision):
        raise bad
    parts = body.rstrip("/").split("/")
    if (
        len(parts) < 2
        or not all(_NAME.match(p) for p in parts[:2])
        or any(not p or p in (".", "..") for p in parts[2:])
    ):
        raise bad
    return HubRef(repo_id="/".join(parts[:2]), filename="/".join(parts[2:]) or None, revision=revision or None)


def resolve_bundle_ref(
    ref: str | Path,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """A local path for ``ref``: a plain path as it is, an ``hf://`` reference as the file in
    the Hugging Face cache (downloaded if needed and allowed). ``endpoint``, ``token`` and
    ``cache_dir`` default to huggingface_hub's own (``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_CACHE``)."""
    if not is_hub_ref(ref):
        return Path(ref)
    hub = parse_hub_ref(ref)
    if hub.filename is None:
        hub = hub.with_file(_only_bundle(hub, _repo_files(hub, endpoint, token, cache_dir)))
    from huggingface_hub import hf_hub_download

    try:
        return Path(
            hf_hub_download(
                hub.repo_id, hub.filename, revision=hub.revision, endpoint=endpoint, token=token, cache_dir=cache_dir
            )
        )
    except Exception as exc:
        raise _hub_error(hub, exc, endpoint) from exc


def _only_bundle(hub: HubRef, files: list[str]) -> str:
    bundles = sorted(f for f in files if f.endswith(".bundle"))
    if not bundles:
        raise HubError(
            f"{hub}: the repo holds no bundle (no *.bundle file)",
            f"name the file: {hub.with_file('FILE.bundle')}, or push one: maskctl push BUNDLE --repo-id {hub.repo_id}",
        )
    if len(bundles) > 1:
        shown = ", ".join(bundles[:5]) + (f" and {len(bundles) - 5} more" if len(bundles) > 5 else "")
        raise HubError(
            f"{hub} holds {len(bundles)} bundles ({shown})", f"pick one: {hub.with_file(bundles[0])} (syntax {SYNTAX})"
        )
    return bundles[0]


def _repo_files(hub: HubRef, endpoint: str | None, token: str | bool | None, cache_dir: str | Path | None) -> list[str]:
    """The repo's files at the revision: from the Hub, or from the cache when offline or the
    Hub cannot be reached (the same fallback ``hf_hub_download`` makes)."""
    from huggingface_hub import HfApi

    if not offline():
        try:
            return HfApi(endpoint=endpoint, token=token).list_repo_files(hub.repo_id, revision=hub.revision)
        except network_errors():
            pass
        except Exception as exc:
            raise _hub_error(hub, exc, endpoint) from exc
    cached = _cached_files(hub, cache_dir)
    if cached is None:
        raise _not_cached(hub, endpoint)
    return cached


def _cached_files(hub: HubRef, cache_dir: str | Path | None) -> list[str] | None:
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    storage = Path(cache_dir or constants.HF_HUB_CACHE) / repo_folder_name(repo_id=hub.repo_id, repo_type="model")
    revision = hub.revision or constants.DEFAULT_REVISION
    commit = revision if _COMMIT.match(revision) else None
    ref_file = storage / "refs" / revision
    if commit is None and ref_file.is_file():
        commit = ref_file.read_text(encoding="utf-8").strip()
    snapshot = storage / "snapshots" / str(commit)
    if commit is None or not snapshot.is_dir():
        return None
    return sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file())


def network_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean "no network" (huggingface_hub's offline guard, the HTTP client's
    transport errors: httpx2 in huggingface_hub 2.x, httpx before)."""
    from huggingface_hub.utils import OfflineModeIsEnabled

    errors: list[type[BaseException]] = [OfflineModeIsEnabled, ConnectionError, TimeoutError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def offline() -> bool:
    """huggingface_hub's own switch (``HF_HUB_OFFLINE``, read once when it is imported)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _not_cached(hub: HubRef, endpoint: str | None) -> HubError:
    from huggingface_hub import constants

    if offline():
        return HubError(
            f"{hub} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1",
            "run the command once online (without HF_HUB_OFFLINE=1) to download it, or pass a local *.bundle",
        )
    return HubError(
        f"{hub}: cannot reach the Hub ({endpoint or constants.ENDPOINT}) and it is not in the local Hugging Face cache",
        "check the network (or HF_ENDPOINT), or pass a local *.bundle",
    )


def _hub_error(hub: HubRef, exc: Exception, endpoint: str | None) -> HubError:
    """One line for whatever huggingface_hub raised; anything unforeseen keeps its traceback."""
    from huggingface_hub import utils as errors  # the error classes, importable there in 0.x and later

    if isinstance(exc, errors.LocalEntryNotFoundError):
        return _not_cached(hub, endpoint)
    if isinstance(exc, errors.RepositoryNotFoundError):  # also gated repos
        return HubError(
            f"{hub}: the Hub has no repo {hub.repo_id}, or it is private or gated",
            "check the name; for a private repo log in (hf auth login) or set HF_TOKEN",
        )
    if isinstance(exc, errors.RevisionNotFoundError):
        return HubError(
            f"{hub}: the repo has no revision {hub.revision!r}",
            "check the branch, tag or commit after @ (none means main)",
        )
    if isinstance(exc, errors.EntryNotFoundError):
        return HubError(
            f"{hub}: the repo has no file {hub.filename!r}",
            f"check the name, or leave it out to use the repo's only bundle: hf://{hub.repo_id}",
        )
    if isinstance(exc, errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        return HubError(f"{hub}: the Hub answered HTTP {status}", "try again later, or check HF_ENDPOINT and HF_TOKEN")
    if isinstance(exc, network_errors()):
        return _not_cached(hub, endpoint)
    raise exc
