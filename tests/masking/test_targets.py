"""Exactly the intended layers are masked, for each architecture family."""

from __future__ import annotations

import pytest
import transformers
from torch import nn

from maskctl.errors import ModelError
from maskctl.masking.config import MaskConfig
from maskctl.masking.layer import MaskedLinear
from maskctl.masking.model import masked_layers, wrap_model
from maskctl.masking.targets import family_for, parse_blocks
from maskctl.models import load_task_model, resolve_model

BERT_BLOCK = [
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
]
DISTIL_BLOCK = ["attention.q_lin", "attention.k_lin", "attention.v_lin", "attention.out_lin", "ffn.lin1", "ffn.lin2"]
# Tiny models have 4 blocks; the paper's default masks all but the lowest two: blocks 2 and 3.
EXPECTED = {
    "bert": [f"bert.encoder.layer.{i}.{n}" for i in (2, 3) for n in BERT_BLOCK] + ["bert.pooler.dense", "classifier"],
    "roberta": [f"roberta.encoder.layer.{i}.{n}" for i in (2, 3) for n in BERT_BLOCK]
    + ["classifier.dense", "classifier.out_proj"],
    "distilbert": [f"distilbert.transformer.layer.{i}.{n}" for i in (2, 3) for n in DISTIL_BLOCK]
    + ["pre_classifier", "classifier"],
}


def _model(tiny_models, arch):
    model, new_keys = load_task_model(
        resolve_model(str(tiny_models[arch])), "AutoModelForSequenceClassification", ["a", "b", "c"]
    )
    return model, new_keys


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_default_masks_exactly_the_paper_layers(tiny_models, arch):
    model, _ = _model(tiny_models, arch)
    names = wrap_model(model, MaskConfig())
    assert sorted(names) == sorted(EXPECTED[arch])
    assert sorted(masked_layers(model)) == sorted(EXPECTED[arch])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{n}.scores" for n in EXPECTED[arch]}
    # Embeddings, LayerNorm and biases are never masked or trained.
    for name, module in model.named_modules():
        if isinstance(module, (nn.Embedding, nn.LayerNorm)):
            assert not any(p.requires_grad for p in module.parameters()), name


@pytest.mark.parametrize("arch", sorted(EXPECTED))
def test_head_train_trains_the_output_layer_instead_of_masking_it(tiny_models, arch):
    model, _ = _model(tiny_models, arch)
    names = wrap_model(model, MaskConfig(head="train", blocks="all"))
    output = EXPECTED[arch][-1]
    assert output not in names
    assert len([n for n in names if ".layer." in n]) == 4 * 6
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert f"{output}.weight" in trainable and f"{output}.bias" in trainable
    assert isinstance(model.get_submodule(output), nn.Linear)
    assert isinstance(model.get_submodule(EXPECTED[arch][-2]), MaskedLinear)


def test_token_classification_heads_have_no_pooler(tiny_models):
    model, _ = load_task_model(resolve_model(str(tiny_models["bert"])), "AutoModelForTokenClassification", ["O", "X"])
    names = wrap_model(model, MaskConfig())
    assert "classifier" in names and not any("pooler" in n for n in names)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, [2, 3, 4, 5]),
        ("all", [0, 1, 2, 3, 4, 5]),
        ("top:2", [4, 5]),
        ("bottom:2", [0, 1]),
        ("2-4", [2, 3, 4]),
        ("0,3,5", [0, 3, 5]),
        ("none", []),
        ("1-2,4", [1, 2, 4]),
    ],
)
def test_parse_blocks(spec, expected):
    assert parse_blocks(spec, 6) == expected


def test_parse_blocks_twelve_block_default_is_paper_2_to_11():
    assert parse_blocks(None, 12) == list(range(2, 12))


@pytest.mark.parametrize("spec", ["2-12", "top:7", "x", "3-1"])
def test_parse_blocks_rejects_bad_specs(spec):
    with pytest.raises(ValueError):
        parse_blocks(spec, 6)


def test_unsupported_architecture_is_refused_clearly():
    config = transformers.GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=16)
    model = transformers.GPT2ForSequenceClassification(config)
    with pytest.raises(ModelError, match="not a supported encoder"):
        family_for(model)


def test_unknown_model_type_with_bert_structure_is_accepted(tiny_models):
    model, _ = _model(tiny_models, "bert")
    model.config.model_type = "my-bert-like"
    assert family_for(model).name == "bert"
