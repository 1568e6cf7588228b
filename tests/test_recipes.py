"""Every shipped recipe is valid; overrides parse as YAML scalars and unknown keys are refused."""

from __future__ import annotations

import pytest

from maskctl.errors import MaskctlError
from maskctl.recipes import apply_overrides, load_recipe
from maskctl.resources import builtin_dir
from maskctl.tasks.registry import get_card
from maskctl.training.trainer import TrainArgs

RECIPES = sorted(builtin_dir("recipes").glob("*.yaml"))


def test_there_are_recipes():
    assert RECIPES


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_shipped_recipe_is_valid(path):
    settings = load_recipe(str(path))
    args = TrainArgs(**settings)  # every key is a TrainArgs field, every value accepted
    get_card(args.task)  # names a registered task
    assert load_recipe(path.stem) == settings  # shipped recipes are found by name too


def test_overrides_parse_values_and_reject_unknown_keys():
    merged = apply_overrides({"lr": 1e-3}, ["lr=3e-3", "epochs=2", "mask-blocks=top:2", "output="])
    assert merged == {"lr": 3e-3, "epochs": 2, "mask_blocks": "top:2", "output": None}
    with pytest.raises(MaskctlError, match="unknown recipe keys"):
        apply_overrides({}, ["learning_rate=1"])
    with pytest.raises(MaskctlError, match="key=value"):
        apply_overrides({}, ["lr"])


def test_values_are_coerced_to_the_option_types(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("lr: 1e-3\nepochs: '2'\noverwrite: 'yes'\n")
    assert load_recipe(str(recipe)) == {"lr": 1e-3, "epochs": 2, "overwrite": True}
    with pytest.raises(MaskctlError, match="epochs must be int"):
        apply_overrides({}, ["epochs=two"])
    with pytest.raises(MaskctlError, match="epochs must be int"):
        apply_overrides({}, ["epochs=1.5"])
