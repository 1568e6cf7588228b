"""Bundles keep no machine paths: what ``save_bundle`` writes instead of the absolute paths a run
knows, and how a reader finds those things again.

Why: a bundle is copied, shared and pushed to the Hub. An absolute path names one machine's
layout (a home folder, a site-packages folder, a pytest temporary folder) and is wrong, and
revealing, anywhere else. What is written instead:

* the base model by what finds it on any machine: a packaged model by its alias, package and
  version; a hub model by id and revision; a local folder by its name only (``--model FOLDER``
  points to a copy, and the fingerprint proves it is the same model);
* the task card without ``base_dir``, absolute data file names reduced to their names
  (``--data-dir`` finds them);
* the run's record with absolute paths reduced to their names (``--task /x/card.yaml`` is stored
  as ``card.yaml``) and an absolute ``data_dir`` dropped.

So that the machine that trained a bundle still evaluates it without options, ``local`` records
where the base model's folder, the card's folder and the data folder are: *relative to the
bundle's own folder* when they share a folder at most ``MAX_UP`` levels up that is not the
filesystem's root (a project's ``masks/`` beside its ``models/`` and ``data/``: the hint survives
moving the project), else as the absolute folder (a model under ``/data/models`` and masks under
``/srv/masks``, the usual layout; PEFT's ``base_model_name_or_path`` keeps what the user gave in
the same way). ``local_view`` uses a hint only when it leads to an existing model folder, and
the loader still checks the fingerprint of what it finds. Copies meant for others carry no hint
(``without_paths``: ``maskctl push``, ``export``, model cards). Bundles written before hints
(absolute paths) read as ever.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

MAX_UP = 4  # a hint may climb at most this many folders from the bundle's folder
LOCAL = "local"  # the meta key of the hints: base_model, task_dir, data_dir (relative or absolute, posix)
FOUND = "found_by"  # set in memory only on a source ``local_view`` filled in from a hint


def is_absolute(value: Any) -> bool:
    """An absolute path on any platform (a bundle written on Windows is read on Linux too)."""
    return (
        isinstance(value, str)
        and bool(value)
        and (PurePosixPath(value).is_absolute() or PureWindowsPath(value).is_absolute() or value.startswith("~"))
    )


def _name(value: str) -> str:
    return (PureWindowsPath(value) if "\\" in value else PurePosixPath(value)).name


def portable_meta(meta: dict[str, Any], path: str | Path, origin: str | Path | None = None) -> dict[str, Any]:
    """A copy of a bundle's JSON to write at ``path``, without machine paths (see the module).

    ``origin`` is where the bundle was read from, if it was: its ``local`` hints are re-based
    from there, so a bundle loaded and saved elsewhere keeps finding its base and data.
    """
    here = Path(path).absolute().parent
    places = _hinted(meta, Path(origin).absolute().parent if origin else None)
    meta, found = without_paths(meta)
    places.update(found)  # what the run itself named wins over older hints
    hints = {
        what: _relative(Path(folder), here) or Path(folder).resolve().as_posix()
        for what, folder in places.items()
        if Path(folder).is_dir()
    }
    if hints:
        meta[LOCAL] = hints
    return meta


def without_paths(meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A copy of ``meta`` without machine paths or hints, and the absolute folders it named
    (``base_model``, ``task_dir``, ``data_dir``). Model cards and exports describe a bundle,
    old ones too, through this."""
    from maskctl.models import PACKAGED_MODELS

    meta = copy.deepcopy(meta)
    meta.pop(LOCAL, None)
    places: dict[str, str] = {}
    source = (meta.get("base_model") or {}).get("source")
    if isinstance(source, dict):
        source.pop(FOUND, None)
        kind, location = source.get("kind"), str(source.get("location") or "")
        if kind == "package" and source.get("spec") in PACKAGED_MODELS:
            source["location"] = PACKAGED_MODELS[source["spec"]][0]  # the distribution, found again by name
        elif kind == "path":
            if is_absolute(location):
                places["base_model"] = location
            source["location"] = source["spec"] = _name(location.rstrip("/\\")) or str(source.get("spec"))
    task = meta.get("task")
    if isinstance(task, dict):
        base_dir = task.pop("base_dir", None)
        if is_absolute(base_dir):
            places["task_dir"] = base_dir
        for spec in (task.get("source"), task.get("files")):
            _names_only(spec)
    training = meta.get("training")
    if isinstance(training, dict):
        if is_absolute(training.get("data_dir")):
            places["data_dir"] = training["data_dir"]
            training["data_dir"] = None
        for key, value in training.items():
            if is_absolute(value):
                training[key] = _name(value.rstrip("/\\"))
        for key in ("task", "model") if (source or {}).get("kind") == "path" else ("task",):
            value = training.get(key)
            if isinstance(value, str) and ("/" in value or "\\" in value):
                training[key] = _name(value.rstrip("/\\"))  # a relative path: its name
    return meta, places


def local_view(raw: dict[str, Any], where: str | Path | None) -> dict[str, Any]:
    """``raw`` with the folders its ``local`` hints find from the bundle at ``where`` filled in
    (in memory only): the base model's location, the card's ``base_dir``, the run's data folder.
    A hint that leads nowhere, or a value already stored (older bundles), is left alone."""
    hints = raw.get(LOCAL)
    if not isinstance(hints, dict) or where is None or not Path(where).is_file():
        return raw
    folder = Path(where).absolute().parent
    found = {what: folder / rel for what, rel in hints.items() if isinstance(rel, str) and (folder / rel).is_dir()}
    if not found:
        return raw
    raw = copy.deepcopy(raw)
    source = raw.get("base_model", {}).get("source", {})
    model = found.get("base_model")
    if (
        source.get("kind") == "path"
        and model is not None
        and (model / "config.json").is_file()
        and not is_absolute(source.get("location"))
    ):
        source["location"] = str(model.resolve())
        source[FOUND] = f"the bundle's path hint {hints['base_model']!r}"
    if "task_dir" in found and isinstance(raw.get("task"), dict) and not raw["task"].get("base_dir"):
        raw["task"]["base_dir"] = str(found["task_dir"].resolve())
    if "data_dir" in found and isinstance(raw.get("training"), dict) and not raw["training"].get("data_dir"):
        raw["training"]["data_dir"] = str(found["data_dir"].resolve())
    return raw


def _hinted(meta: dict[str, Any], origin: Path | None) -> dict[str, str]:
    """The absolute folders an already portable bundle's hints point to from where it was read."""
    hints = meta.get(LOCAL)
    if origin is None or not isinstance(hints, dict):
        return {}
    return {
        what: str((origin / rel).resolve())
        for what, rel in hints.items()
        if isinstance(rel, str) and (origin / rel).is_dir()
    }


def _relative(folder: Path, here: Path) -> str | None:
    """``folder`` from ``here``, if they share a folder below the filesystem's root and it is at
    most ``MAX_UP`` levels up: a path through the root would spell out the machine's layout."""
    folder, here = folder.resolve(), here.resolve()
    try:
        rel = os.path.relpath(folder, here)
        common = Path(os.path.commonpath([folder, here]))
    except ValueError:  # another drive (Windows)
        return None
    if common == Path(common.anchor) or Path(rel).parts.count("..") > MAX_UP:
        return None
    return Path(rel).as_posix()


def _names_only(spec: Any) -> None:
    """Absolute file names under a card's ``source``/``files`` become their names (found under
    ``--data-dir`` or the card's folder); ids, readers and relative names are kept."""
    if not isinstance(spec, dict):
        return
    for key, value in spec.items():
        if isinstance(value, dict):
            _names_only(value)
        elif is_absolute(value):
            spec[key] = _name(value)
