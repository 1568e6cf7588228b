"""One declaration per setting: bounds and choices on the field, checked before any loading, and
every field a command-line option (maskctl.schema, maskctl/cli/options.py)."""

from __future__ import annotations

import dataclasses

import pytest
import typer

from maskctl.cli import app
from maskctl.errors import MaskctlError
from maskctl.experiments.recipes import resolve_run
from maskctl.masking.config import MaskConfig
from maskctl.schema import check_fields, setting
from maskctl.serving.http.settings import ServeSettings
from maskctl.train_settings import FALLBACKS, TrainArgs


@dataclasses.dataclass
class _Knobs:
    ratio: float = setting(0.5, "a share", above=0, below=1)
    count: int = setting(1, "how many", min=1, max=9)
    mode: str = setting("a", "which", choices=("a", "b"))


@pytest.mark.parametrize(
    "values, message, fix",
    [
        ({"ratio": 1.0}, "--ratio 1.0 is out of range", "in (0, 1)"),
        ({"ratio": 0}, "--ratio 0 is out of range", "in (0, 1)"),
        ({"count": 0}, "--count 0 is out of range", "in [1, 9]"),
        ({"count": 10}, "--count 10 is out of range", "in [1, 9]"),
        ({"mode": "c"}, "unknown --mode 'c'", "use one of a, b"),
    ],
)
def test_bounds_and_choices_come_from_the_field(values, message, fix):
    with pytest.raises(MaskctlError) as err:
        check_fields(_Knobs(**values))
    assert err.value.message == message and fix in err.value.fix
    check_fields(_Knobs(ratio=0.99, count=9, mode="b"))


def test_train_settings_are_checked_before_anything_loads():
    for bad, fragment in [
        ({"head": "frozen"}, "--head"),
        ({"mask_blocks": "2-x"}, "--mask-blocks"),
        ({"init_sparsity": 1.5}, "--init-sparsity"),
        ({"warmup_ratio": 1.0}, "--warmup-ratio"),
        ({"batch_size": 0}, "--batch-size"),
        ({"method": "prune"}, "--method"),
        ({"lr": 0.0}, "--lr"),
    ]:
        with pytest.raises(MaskctlError, match=fragment):
            TrainArgs(**bad)
    with pytest.raises(MaskctlError, match="--init-sparsity"):  # the mask's own bound, declared once
        MaskConfig(init_sparsity=0.0)


def _options(command: str) -> set[str]:
    click_command = typer.main.get_command(app).commands[command]
    return {p.name for p in click_command.params}


def test_every_setting_is_an_option_and_help_states_fallbacks_once():
    assert {f.name for f in dataclasses.fields(TrainArgs)} <= _options("train")
    assert {f.name for f in dataclasses.fields(ServeSettings)} <= _options("serve")
    help_of = {p.name: p.help for p in typer.main.get_command(app).commands["train"].params}
    assert f"{FALLBACKS['lr']['mask']:g} mask" in help_of["lr"] and f"{FALLBACKS['lr']['finetune']:g}" in help_of["lr"]


def test_unknown_recipe_keys_get_a_suggestion(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: bbc-news\nbatch_sise: 8\n", encoding="utf-8")
    with pytest.raises(MaskctlError) as err:
        resolve_run(str(recipe), [], {}, set())
    assert "batch_sise" in err.value.message and err.value.fix == "did you mean 'batch_size'?"


def test_a_bad_value_fails_before_the_model_is_looked_up(tmp_path):
    from tests.cli.inprocess import run_in_process

    proc = run_in_process("train", "--model", tmp_path / "nowhere", "--mask-blocks", "2-x")
    assert proc.returncode == 2 and "--mask-blocks '2-x' is not a block list" in proc.stderr, proc.stderr
    assert "nowhere" not in proc.stderr
