"""Hugging Face hub datasets through ``datasets.load_dataset`` (online, or from the cache).

Spec keys: ``path`` (dataset id, or a local dataset folder), optional ``name`` (configuration)
and ``revision`` (a branch, tag or commit), ``splits: {train: train, dev: validation, test:
test}``, ``label_map``, ``fields`` (the dataset's column names) and ``dev_from_train`` for
datasets without a dev split. Integer labels and tags are mapped to names through the dataset's
``ClassLabel`` features.

Why the parquet fallback: since ``datasets`` 4.0 a repository that still ships only a loading
script (``conll2003.py``, ``trec.py``) is refused. The Hub keeps a parquet conversion of each
such dataset on the ``refs/convert/parquet`` branch, with the same configurations, splits and
features; the reader reads it (and says so) when ``datasets`` refuses the script.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from maskctl.errors import DatasetNotFound, DatasetOffline, DatasetScriptOnly, TaskError
from maskctl.tasks.card import TaskCard
from maskctl.tasks.readers.rows import example_from_row
from maskctl.tasks.readers.split import carve_dev

DEFAULT_SPLITS = {"train": "train", "dev": "validation", "test": "test"}
PARQUET_REVISION = "refs/convert/parquet"
log = logging.getLogger(__name__)


def read(card: TaskCard, spec: dict[str, Any], split: str, data_dir: Path | None) -> list[dict[str, Any]]:
    return carve_dev(lambda s: _read_split(card, spec, s), spec, split, card)


def _read_split(card: TaskCard, spec: dict[str, Any], split: str) -> list[dict[str, Any]]:
    hub_split = {**DEFAULT_SPLITS, **spec.get("splits", {})}[split]
    data = load_hub_split(card, spec, hub_split)
    names = {col: _class_names(feature) for col, feature in data.features.items()}
    examples = []
    for i, row in enumerate(data):
        row = {col: _named(value, names.get(col)) for col, value in row.items()}
        examples.append(example_from_row(card, spec, row, f"{spec['path']} {hub_split} row {i}"))
    return examples


def load_hub_split(card: TaskCard, spec: dict[str, Any], hub_split: str):
    """One split of the card's hub dataset; a script-only repository is read from its parquet
    conversion; every failure a typed ``TaskError`` naming what happened."""
    import datasets  # heavy: imported only when a hub task is read

    path, name, revision = spec["path"], spec.get("name"), spec.get("revision")
    what = f"dataset {path!r}" + (f" ({name})" if name else "") + f" split {hub_split!r}"
    try:
        return _load(datasets, path, name, hub_split, revision)
    except Exception as exc:
        first = exc  # datasets may hide a script-only refusal behind a stale cache: try the conversion anyway
        if revision is not None or Path(path).exists() or (_missing(exc) and not _offline()):
            raise _failure(card, what, exc, revision) from exc
        if _script_only(exc):
            log.warning(
                "%s holds only a loading script, which datasets %s no longer runs; reading the Hub's "
                "parquet conversion (revision %s)",
                path,
                datasets.__version__,
                PARQUET_REVISION,
            )
    try:  # the conversion (offline: its cached copy, if it was read that way once)
        return _load(datasets, path, name, hub_split, PARQUET_REVISION)
    except Exception as exc:
        if _script_only(first) and not _offline() and _missing(exc):
            raise DatasetScriptOnly(
                f"{what}: the repository holds only a loading script, which datasets >= 4 no longer runs, "
                f"and it has no parquet conversion ({PARQUET_REVISION})",
                f"give the files with --data-dir{' (' + _files_hint(card) + ')' if card.files else ''}, "
                "or name a parquet copy of it as `source.path` in the task card",
            ) from exc
        raise _failure(card, what, first if _offline() else exc, PARQUET_REVISION) from exc


def _load(datasets, path: str, name: str | None, split: str, revision: str | None):
    if revision == PARQUET_REVISION:
        return _load_conversion(datasets, path, name, split)
    return datasets.load_dataset(path, name, split=split, revision=revision)


def _load_conversion(datasets, path: str, name: str | None, split: str):
    """The parquet conversion's ``{config}/{split}/*.parquet`` files, fetched with
    ``huggingface_hub`` (offline: from its cache) and read by the ``parquet`` builder. Why not
    ``load_dataset(path, revision=...)``: the branch has no card listing its configurations, so
    ``datasets`` sees one ``default`` of every file, and offline it cannot find a cached
    ``data_dir`` configuration again. Features (``ClassLabel`` names) travel in the files."""
    from huggingface_hub import snapshot_download

    folder = Path(
        snapshot_download(
            path, repo_type="dataset", revision=PARQUET_REVISION, allow_patterns=[f"{name or '*'}/{split}/*.parquet"]
        )
    )
    configs = sorted({f.parent.parent.name for f in folder.glob(f"{name or '*'}/{split}/*.parquet")})
    if not configs:
        raise FileNotFoundError(f"no {split!r} split in the parquet conversion")
    if len(configs) > 1:
        raise ValueError(f"the parquet conversion has configurations {configs}: name one as `source.name`")
    files = sorted(str(f) for f in (folder / configs[0] / split).glob("*.parquet"))
    return datasets.load_dataset("parquet", data_files={split: files}, split=split)


def _script_only(exc: BaseException) -> bool:
    return "scripts are no longer supported" in str(exc)


def _missing(exc: BaseException) -> bool:
    import datasets

    not_found = (FileNotFoundError, datasets.exceptions.DatasetNotFoundError)
    return isinstance(exc, not_found) or type(exc).__name__ in {
        "RevisionNotFoundError",
        "EntryNotFoundError",
        "RepositoryNotFoundError",
    }


def _offline() -> bool:
    return any(
        os.environ.get(v, "").lower() in {"1", "true", "yes", "on"} for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
    )


def _failure(card: TaskCard, what: str, exc: BaseException, revision: str | None) -> TaskError:
    files = f"give the official files with --data-dir ({_files_hint(card)})" if card.files else None
    if _script_only(exc):
        return DatasetScriptOnly(
            f"{what}: the repository holds only a loading script, which datasets >= 4 "
            f"no longer runs (revision {revision})",
            files or "name a parquet copy of it as `source.path` in the task card",
        )
    if _offline() or isinstance(exc, ConnectionError) or "offline" in str(exc).lower():
        return DatasetOffline(
            f"{what}: offline and not in the datasets cache ({type(exc).__name__})",
            "load it once online (unset HF_DATASETS_OFFLINE / HF_HUB_OFFLINE) to cache it"
            + (f", or {files}" if files else ""),
        )
    if _missing(exc) or isinstance(exc, ValueError):
        return DatasetNotFound(
            f"{what}: not found ({type(exc).__name__}: {_first_line(exc)})",
            "check the dataset id, configuration, revision and split names in the task card"
            + (f", or {files}" if files else ""),
        )
    return TaskError(
        f"cannot load {what} ({type(exc).__name__}: {_first_line(exc)})",
        files or "check the dataset id and your connection to the Hub",
    )


def _files_hint(card: TaskCard) -> str:
    files = card.files.get("files")
    return (
        ", ".join(str(f) for f in files.values()) if isinstance(files, dict) else str(card.files["reader"]) + " files"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""


def _class_names(feature) -> list[str] | None:
    names = getattr(feature, "names", None)
    if names is None:  # Sequence(ClassLabel) in datasets < 4, List(ClassLabel) after
        inner = getattr(feature, "feature", None)
        names = getattr(inner, "names", None)
    return names


def _named(value: Any, names: list[str] | None) -> Any:
    if names is None:
        return value
    if isinstance(value, list):
        return [names[v] if isinstance(v, int) and 0 <= v < len(names) else v for v in value]
    return names[value] if isinstance(value, int) and 0 <= value < len(names) else value
