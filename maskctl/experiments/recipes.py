"""Training recipes: YAML files of ``TrainArgs`` fields, plus ``key=value`` overrides.

A recipe is a mapping whose keys are ``maskctl train`` option names (with underscores),
e.g. ``lr: 1.0e-3``, plus three recipe-level keys that never reach ``TrainArgs``:

- ``base: other.yaml`` — start from another recipe (a path relative to this file) and change
  a few keys; chains are followed and a cycle is refused. The paper's recipes use it so that
  its shared settings are written once (``recipes/paper/_paper.yaml``).
- ``sweep: {lr: [1e-5, 3e-5]}`` — the grid ``maskctl train`` sweeps (see ``maskctl.experiments.sweep``).
- ``sweep_extend: 3`` — how many points the sweep may add beyond an edge of the grid.

Precedence, lowest first: ``TrainArgs`` defaults, the task card's defaults, the recipe,
``key=value`` overrides, then options given explicitly on the command line. A key fixed by an
override or an explicit option also leaves the recipe's sweep (``lr=3e-5`` runs once).

Shipped recipes are found by name relative to ``recipes/`` (``bbc-news-minilm``,
``paper/bert/sst2``); files whose name starts with ``_`` are partial bases, not listed.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from maskctl.errors import MaskctlError
from maskctl.resources import builtin_dir
from maskctl.schema import did_you_mean

RECIPE_KEYS = ("base", "sweep", "sweep_extend")  # handled here and in maskctl.experiments.sweep, not by TrainArgs


def recipe_fields() -> set[str]:
    from maskctl.train_settings import TrainArgs

    return {f.name for f in dataclasses.fields(TrainArgs)}


@dataclass
class Recipe:
    """A loaded recipe: its ``TrainArgs`` settings and its sweep (raw; ``maskctl.experiments.sweep`` checks it)."""

    settings: dict[str, Any]
    sweep: dict[str, list[Any]] = field(default_factory=dict)
    sweep_extend: int | None = None
    path: Path | None = None


@dataclass
class RunSpec:
    """What one ``maskctl train`` (or analysis) invocation asks for, before any sweep is parsed."""

    settings: dict[str, Any]  # TrainArgs fields
    sweep: dict[str, list[Any]]  # the recipe's grid, without the keys fixed on the command line
    sweep_extend: int | None
    fixed: set[str]  # keys set by key=value overrides or explicit options
    dropped: list[str] = field(default_factory=list)  # recipe sweep keys that a fixed key replaced


def _coerce(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Convert values to the option's type: YAML 1.1 reads ``1e-3`` (no dot) as a string."""
    from maskctl.train_settings import TrainArgs

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
            elif (
                target is int
                and isinstance(value, float)
                and not value.is_integer()
                or target in (int, float)
                and isinstance(value, bool)
            ):
                raise ValueError(value)
            out[key] = target(value)
        except (TypeError, ValueError):
            raise MaskctlError(
                f"{where}: {key} must be {target.__name__}, got {value!r}", "fix the value in the recipe or override"
            ) from None
    return out


def shipped_recipes() -> list[str]:
    """Names of the runnable shipped recipes, e.g. ``bbc-news-minilm``, ``paper/bert/sst2``."""
    root = builtin_dir("recipes")
    names = [p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml")]
    return sorted(n for n in names if not any(part.startswith("_") for part in n.split("/")))


def find_recipe(name_or_path: str) -> Path:
    """A path, or the name of a shipped recipe (``bbc-news-minilm``, ``paper/bert/sst2``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    root = builtin_dir("recipes").resolve()
    shipped = (root / f"{name_or_path.removesuffix('.yaml')}.yaml").resolve()
    if shipped.is_file() and shipped.is_relative_to(root):
        return shipped
    names = shipped_recipes()
    paper = [n for n in names if n.startswith("paper/")]
    listed = [n for n in names if not n.startswith("paper/")]
    if paper:
        listed.append(f"paper/<bert|roberta|distilbert>/<task> ({len(paper)} recipes)")
    raise MaskctlError(
        f"recipe {name_or_path} does not exist", f"pass a YAML file or one of the shipped recipes: {', '.join(listed)}"
    )


def read_recipe(name_or_path: str) -> Recipe:
    """Load a recipe with its ``base:`` chain resolved, its sweep checked and values coerced."""
    path = find_recipe(name_or_path)
    data = _read_chain(path, ())
    sweep = data.pop("sweep", None) or {}
    extend = data.pop("sweep_extend", None)
    where = str(path)
    if not isinstance(sweep, dict):
        raise MaskctlError(f"{where}: sweep must be a mapping like {{lr: [1e-5, 3e-5]}}", "fix the recipe")
    if extend is not None and (isinstance(extend, bool) or not isinstance(extend, int) or extend < 0):
        raise MaskctlError(
            f"{where}: sweep_extend must be a whole number >= 0, got {extend!r}",
            "e.g. sweep_extend: 3, or 0 to never extend the grid",
        )
    return Recipe(
        settings=_coerce(data, where), sweep=check_grid(sweep, f"{where}: sweep"), sweep_extend=extend, path=path
    )


def _read_chain(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """The mapping in ``path`` on top of its ``base:`` chain (a cycle is an error)."""
    resolved = path.resolve()
    if resolved in seen:
        chain = " -> ".join(p.name for p in (*seen, resolved))
        raise MaskctlError(f"recipe base cycle: {chain}", "remove the `base:` key that points back")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise MaskctlError(f"recipe {path} cannot be read ({exc.strerror})", "check the `base:` path") from exc
    except yaml.YAMLError as exc:
        raise MaskctlError(f"{path}: not valid YAML ({exc})".replace("\n", " "), "fix the YAML syntax") from exc
    if not isinstance(data, dict):
        raise MaskctlError(f"{path}: a recipe must be a YAML mapping", "write `key: value` lines")
    _check_keys(data, str(path), extra=RECIPE_KEYS)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str) or not base.strip():
        raise MaskctlError(f"{path}: base must be a path to another recipe", "e.g. base: ../_paper.yaml")
    base_path = path.parent / base
    if not base_path.is_file() and base_path.with_suffix(".yaml").is_file():
        base_path = base_path.with_suffix(".yaml")
    if not base_path.is_file():
        raise MaskctlError(f"{path}: base recipe {base} does not exist", "give a path relative to this recipe")
    return {**_read_chain(base_path, (*seen, resolved)), **data}


def load_recipe(name_or_path: str) -> dict[str, Any]:
    """Only the ``TrainArgs`` settings of a recipe: ``TrainArgs(**load_recipe(name))`` works."""
    return read_recipe(name_or_path).settings


def override_keys(overrides: list[str]) -> list[str]:
    """The option names that ``key=value`` strings set (``mask-blocks`` -> ``mask_blocks``)."""
    keys = []
    for item in overrides:
        key, sep, _ = item.partition("=")
        if not sep or not key:
            raise MaskctlError(f"override {item!r} is not key=value", "write e.g. lr=3e-3 epochs=2")
        keys.append(key.strip().lstrip("-").replace("-", "_"))
    return keys


def apply_overrides(recipe: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` strings; values are parsed as YAML scalars (``1e-3``, ``true``, ``null``)."""
    merged = dict(recipe)
    for key, item in zip(override_keys(overrides), overrides):
        value = item.partition("=")[2]
        merged[key] = yaml.safe_load(value) if value.strip() else None
    _check_keys(merged, "overrides")
    return _coerce(merged, "overrides")


def resolve_run(
    recipe: str | None,
    overrides: list[str] | None = None,
    options: dict[str, Any] | None = None,
    explicit: set[str] | frozenset[str] = frozenset(),
) -> RunSpec:
    """Combine a recipe, ``key=value`` overrides and command-line ``options`` into one ``RunSpec``.

    ``options`` are every option's value (defaults included) and ``explicit`` the names the user
    typed: an explicit option beats the recipe, a default only fills what the recipe leaves out.
    """
    overrides, options = overrides or [], options or {}
    loaded = read_recipe(recipe) if recipe else Recipe(settings={})
    settings = dict(options)
    if recipe or overrides:
        settings = apply_overrides(loaded.settings, overrides)
        for name, value in options.items():
            if name not in settings or name in explicit:
                settings[name] = value
    fixed = set(override_keys(overrides)) | set(explicit)
    dropped = [key for key in loaded.sweep if key in fixed]
    sweep = {key: values for key, values in loaded.sweep.items() if key not in fixed}
    return RunSpec(settings=settings, sweep=sweep, sweep_extend=loaded.sweep_extend, fixed=fixed, dropped=dropped)


def _check_keys(data: dict[str, Any], where: str, extra: tuple[str, ...] = ()) -> None:
    unknown = sorted(set(data) - recipe_fields() - set(extra))
    if unknown:
        raise MaskctlError(
            f"{where}: unknown recipe keys {unknown}",
            did_you_mean(
                unknown[0], recipe_fields(), f"use `maskctl train` option names: {', '.join(sorted(recipe_fields()))}"
            ),
        )


# -- grids: --sweep and a recipe's sweep: (maskctl.experiments.sweep runs them) --------------------------------
MAX_KEYS = 2
UNSWEEPABLE = ("output", "overwrite", "resume", "checkpoint_dir", "checkpoint_every")


def check_grid(grid: Mapping[str, Any], where: str = "--sweep") -> dict[str, list[Any]]:
    """Validate a grid (keys are ``TrainArgs`` fields, at most two) and coerce its values."""
    if len(grid) > MAX_KEYS:
        raise MaskctlError(
            f"{where}: {len(grid)} keys ({', '.join(map(str, grid))}); a sweep takes one or two",
            "sweep at most two keys at a time, e.g. lr and seed",
        )
    out: dict[str, list[Any]] = {}
    for key, values in grid.items():
        key = str(key)
        if key not in recipe_fields() or key in UNSWEEPABLE:
            sweepable = sorted(recipe_fields() - set(UNSWEEPABLE))
            raise MaskctlError(f"{where}: cannot sweep {key!r}", f"sweep one of: {', '.join(sweepable)}")
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        if not values:
            raise MaskctlError(f"{where}: {key} has no values", f"give values, e.g. {key}=1e-4,3e-4")
        coerced = [_coerce({key: value}, where)[key] for value in values]
        out[key] = list(dict.fromkeys(coerced))  # drop repeats, keep the order
    return out


def parse_sweep(specs: list[str]) -> dict[str, list[Any]]:
    """Parse ``--sweep key=v1,v2,...`` (repeatable); values are YAML scalars like overrides."""
    raw: dict[str, list[Any]] = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        items = [v.strip() for v in values.split(",")]
        if not sep or not key or not all(items):
            raise MaskctlError(f"--sweep {spec!r} is not key=v1,v2,...", "write e.g. --sweep lr=1e-4,3e-4,1e-3")
        if key in raw:
            raise MaskctlError(f"--sweep {key} is given twice", f"list all values once: --sweep {key}=a,b,c")
        raw[key] = [yaml.safe_load(v) for v in items]
    return check_grid(raw, "--sweep")


def resolve_grid(spec: Any, cli_specs: list[str] | None) -> dict[str, list[Any]]:
    """The grid to run for a ``recipes.RunSpec``: ``--sweep`` replaces the recipe's ``sweep:``."""
    if not cli_specs:
        return dict(spec.sweep)
    grid = parse_sweep(cli_specs)
    clash = sorted(set(grid) & set(spec.fixed))
    if clash:
        raise MaskctlError(
            f"{clash[0]} is both swept (--sweep) and fixed by an option or override",
            f"drop --sweep {clash[0]}=... or the fixed {clash[0]}",
        )
    return grid
