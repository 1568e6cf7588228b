"""Every shipped recipe is valid; overrides parse as YAML scalars and unknown keys are refused;
``base:`` chains resolve (cycles refused); the paper recipes carry the paper's settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maskctl.errors import MaskctlError
from maskctl.experiments.recipes import (
    apply_overrides,
    find_recipe,
    load_recipe,
    read_recipe,
    resolve_run,
    shipped_recipes,
)
from maskctl.masking.targets import parse_blocks
from maskctl.resources import builtin_dir
from maskctl.train_settings import TrainArgs

ROOT = builtin_dir("recipes")
FILES = sorted(ROOT.rglob("*.yaml"))
NAMES = shipped_recipes()
PAPER_TASKS = ("mrpc", "sst2", "cola", "rte", "qnli", "pos", "conll03", "swag", "sem", "trec", "ag")
FAMILIES = {"bert": "bert-base-uncased", "roberta": "roberta-base", "distilbert": "distilbert-base-uncased"}
SIZING = Path(__file__).resolve().parents[2] / "maskctl" / "sizing_configs"


def test_there_are_recipes_in_subfolders_too():
    assert {"bbc-news-minilm", "wnut16-minilm", "paper/bert/sst2"} <= set(NAMES)
    assert not [n for n in NAMES if "/_" in n or n.startswith("_")]  # partial bases are not listed


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_shipped_file_loads(path):
    TrainArgs(**load_recipe(str(path)))  # partial bases too: known keys, accepted values


@pytest.mark.parametrize("name", NAMES)
def test_shipped_recipe_is_valid_and_found_by_name(name):
    from maskctl.tasks.registry import get_card

    recipe = read_recipe(name)
    assert recipe.path == (ROOT / f"{name}.yaml").resolve()
    args = TrainArgs(**recipe.settings)  # every key is a TrainArgs field, every value accepted
    get_card(args.task)  # names a registered task
    assert read_recipe(str(ROOT / f"{name}.yaml")) == recipe  # by path and by name alike


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("task", PAPER_TASKS)
def test_paper_recipes_carry_the_paper_settings(family, task):
    recipe = read_recipe(f"paper/{family}/{task}")
    s = recipe.settings
    assert (s["model"], s["task"], s["method"]) == (FAMILIES[family], task, "mask")
    assert (s["init_sparsity"], s["threshold"], s["head"], s["max_length"]) == (0.05, 0.01, "mask", 128)
    assert s["batch_size"] == (128 if task in ("ag", "qnli") else 32)
    assert recipe.sweep == {"lr": [1e-5, 3e-5, 5e-5, 7e-5, 9e-5]} and recipe.sweep_extend == 3
    config = json.loads((SIZING / f"{FAMILIES[family]}.json").read_text())
    n_blocks = config.get("num_hidden_layers") or config["n_layers"]
    assert parse_blocks(s.get("mask_blocks"), n_blocks) == list(range(2, n_blocks))  # 2-11 / 2-5
    # One override moves it to the offline MiniLM (6 blocks): masked blocks 2-5, same sweep.
    spec = resolve_run(f"paper/{family}/{task}", ["model=minilm"])
    assert spec.settings["model"] == "minilm" and spec.sweep == recipe.sweep
    assert parse_blocks(TrainArgs(**spec.settings).mask_blocks, 6) == [2, 3, 4, 5]


def test_wnut16_demo_recipe_uses_the_card_defaults():
    s = load_recipe("wnut16-minilm")
    assert (s["task"], s["model"], s["lr"], s["epochs"], s["head"]) == ("wnut16", "minilm", 3e-3, 20, "train")
    from maskctl.tasks.registry import get_card

    card = get_card("wnut16")  # the card's masking defaults are the recipe's (the best found on dev)
    masked = TrainArgs(task="wnut16").with_task_defaults(card.defaults)
    assert (masked.lr, masked.epochs, masked.head, masked.word_piece) == (
        s["lr"],
        s["epochs"],
        s["head"],
        s["word_piece"],
    )
    finetuned = TrainArgs(task="wnut16", method="finetune").with_task_defaults(card.defaults)
    assert (finetuned.lr, finetuned.epochs, finetuned.word_piece) == (3e-4, 12, "last")


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


def test_base_chains_resolve_relative_to_the_file_and_later_keys_win(tmp_path):
    (tmp_path / "common.yaml").write_text("lr: 1e-3\nepochs: 2\nsweep: {seed: [0, 1]}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "mid.yaml").write_text("base: ../common.yaml\nepochs: 4\nsweep_extend: 0\n")
    (tmp_path / "sub" / "leaf.yaml").write_text("base: mid\ntask: sst2\n")  # .yaml may be left out
    recipe = read_recipe(str(tmp_path / "sub" / "leaf.yaml"))
    assert recipe.settings == {"lr": 1e-3, "epochs": 4, "task": "sst2"}
    assert recipe.sweep == {"seed": [0, 1]} and recipe.sweep_extend == 0
    assert load_recipe(str(tmp_path / "sub" / "leaf.yaml")) == recipe.settings  # no sweep keys for TrainArgs


def test_base_cycles_and_missing_bases_are_one_line_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\nlr: 1e-3\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(MaskctlError, match="cycle: a.yaml -> b.yaml -> a.yaml"):
        read_recipe(str(tmp_path / "a.yaml"))
    (tmp_path / "c.yaml").write_text("base: c.yaml\n")
    with pytest.raises(MaskctlError, match="cycle"):
        read_recipe(str(tmp_path / "c.yaml"))
    (tmp_path / "d.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(MaskctlError, match="base recipe nowhere.yaml does not exist"):
        read_recipe(str(tmp_path / "d.yaml"))


def test_bad_recipe_sweeps_are_refused(tmp_path):
    bad = {
        "sweep: [1, 2]": "must be a mapping",
        "sweep: {lr: [fast]}": "lr must be float",
        "sweep: {learning_rate: [1]}": "cannot sweep",
        "sweep_extend: -1": "whole number",
        "sweep: {lr: [1], seed: [1], epochs: [1]}": "a sweep takes one or two",
    }
    for text, message in bad.items():
        (tmp_path / "r.yaml").write_text(text + "\n")
        with pytest.raises(MaskctlError, match=message):
            read_recipe(str(tmp_path / "r.yaml"))


def test_unknown_names_list_the_shipped_recipes():
    with pytest.raises(MaskctlError, match="bbc-news-minilm.*paper/<bert") as info:
        find_recipe("no-such-recipe")
    assert "\n" not in str(info.value)
    with pytest.raises(MaskctlError):
        find_recipe("../tasks/sst2")  # a real YAML file, but names stay inside recipes/


def test_fixed_keys_leave_the_recipe_sweep_and_explicit_options_win():
    spec = resolve_run("paper/bert/sst2", ["lr=3e-5", "model=minilm"])
    assert spec.sweep == {} and spec.dropped == ["lr"] and spec.settings["lr"] == 3e-5
    options = {"batch_size": 16, "epochs": None, "lr": None}
    spec = resolve_run("paper/bert/sst2", [], options, explicit={"batch_size"})
    assert spec.settings["batch_size"] == 16 and spec.settings["epochs"] == 3  # typed beats recipe; default does not
    assert spec.sweep == {"lr": [1e-5, 3e-5, 5e-5, 7e-5, 9e-5]}


@pytest.mark.parametrize("family, task", [("bert", "sst2"), ("roberta", "mrpc"), ("distilbert", "pos")])
def test_paper_recipes_run_their_sweep_on_a_tiny_model_of_their_family(tiny_models, tmp_path, family, task):
    """The paper recipe as shipped (its lr grid included) trains end to end once the model and
    the data are local: the tiny offline model of the same family and official-format files."""
    from maskctl.bundle.format import load_bundle
    from maskctl.experiments.recipes import resolve_grid
    from maskctl.experiments.sweep import run_sweep
    from tests.tasks.official_fixtures import WRITERS

    WRITERS[task](tmp_path)
    spec = resolve_run(
        f"paper/{family}/{task}",
        [f"model={tiny_models[family]}", f"data_dir={tmp_path}", "max_steps=1", "max_length=48"],
    )
    result = run_sweep(spec.settings, resolve_grid(spec, None), output=tmp_path / "best.bundle", extend=0)
    assert [p.point["lr"] for p in result.points] == [1e-5, 3e-5, 5e-5, 7e-5, 9e-5]
    assert (tmp_path / "best.bundle").is_file() and result.best in result.points
    meta = load_bundle(tmp_path / "best.bundle").meta
    assert meta["mask"]["block_ids"] == [2, 3]  # all but the lowest two of the tiny model's 4 blocks
    assert meta["mask"]["init_sparsity"] == 0.05 and meta["mask"]["head"] == "mask"
