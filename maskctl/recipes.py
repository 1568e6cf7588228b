"""Training recipes: YAML files of ``TrainArgs`` fields, plus ``key=value`` overrides.

A recipe is a flat mapping whose keys are ``maskctl train`` option names (with underscores),
e.g. ``lr: 1.0e-3``. Precedence, lowest first: ``TrainArgs`` defaults, the task card's
defaults, the recipe, ``key=value`` overrides, then options given explicitly on the command line.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import yaml

from maskctl.errors import MaskctlError
from maskctl.resources import builtin_dir


def recipe_fields() -> set[str]:
    from maskctl.training.trainer import TrainArgs

    return {f.name for f in dataclasses.fields(TrainArgs)}


def _coerce(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Convert values to the option's type: YAML 1.1 reads ``1e-3`` (no dot) as a string."""
    from maskctl.training.trainer import TrainArgs

    hints = typing.get_type_hints(TrainArgs)
    out = {}
    for key, value in data.items():
        kinds = [t for t in typing.get_args(hints[key]) or (hints[key],) if t is not type(None)]
        target = kinds[0] if kinds else str
        if value is None or isinstance(value, target) and not (target is int and isinstance(value, bool)):
            out[key] = value
            continue
        try:
            if target is bool:
                if str(value).lower() not in ("true", "false", "yes", "no", "1", "0"):
                    raise ValueError(value)
                value = str(value).lower() in ("true", "yes", "1")
            elif target is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            out[key] = target(value)
        except (TypeError, ValueError):
            raise MaskctlError(f"{where}: {key} must be {target.__name__}, got {value!r}",
                               "fix the value in the recipe or override") from None
    return out


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
    return _coerce(data, str(path))


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
    return _coerce(merged, "overrides")


def _check_keys(data: dict[str, Any], where: str) -> None:
    unknown = sorted(set(data) - recipe_fields())
    if unknown:
        raise MaskctlError(f"{where}: unknown recipe keys {unknown}",
                           f"use `maskctl train` option names: {', '.join(sorted(recipe_fields()))}")
