"""Training recipes: YAML files of ``TrainArgs`` fields, plus ``key=value`` overrides.

A recipe is a flat mapping whose keys are ``maskctl train`` option names (with underscores),
e.g. ``lr: 1.0e-3``. Precedence, lowest first: ``TrainArgs`` defaults, the task card's
defaults, the recipe, ``key=value`` overrides, then options given explicitly on the command line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from maskctl.errors import MaskctlError
from maskctl.resources import builtin_dir


def recipe_fields() -> set[str]:
    from maskctl.training.trainer import TrainArgs

    return {f.name for f in dataclasses.fields(TrainArgs)}


def find_recipe(name_or_path: str) -> Path:
    """A path, or the name of a shipped recipe (``bbc-news-minilm``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = builtin_dir("recipes") / f"{name_or_path.removesuffix('.yaml')}.yaml"
    if shipped.is_file():
        return shipped
    names = sorted(p.stem for p in builtin_dir("recipes").glob("*.yaml"))
    raise MaskctlError(f"recipe {name_or_path} does not exist",
                       f"pass a YAML file or one of the shipped recipes: {', '.join(names)}")


def load_recipe(name_or_path: str) -> dict[str, Any]:
    path = find_recipe(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise MaskctlError(f"{path}: not valid YAML ({exc})".replace("\n", " "), "fix the YAML syntax") from exc
    if not isinstance(data, dict):
        raise MaskctlError(f"{path}: a recipe must be a YAML mapping", "write `key: value` lines")
    _check_keys(data, str(path))
    return data


def apply_overrides(recipe: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` strings; values are parsed as YAML scalars (``1e-3``, ``true``, ``null``)."""
    merged = dict(recipe)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise MaskctlError(f"override {item!r} is not key=value", "write e.g. lr=3e-3 epochs=2")
        key = key.strip().lstrip("-").replace("-", "_")
        merged[key] = yaml.safe_load(value) if value.strip() else None
    _check_keys(merged, "overrides")
    return merged


def _check_keys(data: dict[str, Any], where: str) -> None:
    unknown = sorted(set(data) - recipe_fields())
    if unknown:
        raise MaskctlError(f"{where}: unknown recipe keys {unknown}",
                           f"use `maskctl train` option names: {', '.join(sorted(recipe_fields()))}")
