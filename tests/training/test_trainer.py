"""The trainer learns, its bundles reproduce their metrics, and outputs are never clobbered."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

from maskctl.bundle.format import load_bundle
from maskctl.errors import BundleError, MaskctlError
from maskctl.evaluation import make_loader
from maskctl.experiments.evaluate import evaluate_bundle
from maskctl.masking.config import MaskConfig
from maskctl.masking.model import wrap_model
from maskctl.models import load_task_model, resolve_model
from maskctl.serving.loading import load_masked
from maskctl.tasks.task import get_task
from maskctl.train_settings import TrainArgs
from maskctl.training.trainer import train


def _args(model, task, out, **kw) -> TrainArgs:
    base = dict(model=str(model), task=str(task), output=str(out), batch_size=16, lr=1e-2, epochs=2)
    return TrainArgs(**{**base, **kw})


def test_masking_a_pretrained_model_beats_chance_clearly(pretrained_tiny_bert, keyword_task, tmp_path):
    untrained = train(_args(pretrained_tiny_bert, keyword_task, tmp_path / "init.bundle", max_steps=0))
    trained = train(_args(pretrained_tiny_bert, keyword_task, tmp_path / "mask.bundle"))
    # 4 balanced classes: chance is 0.25; the fresh random classifier starts near it.
    assert untrained.metrics["accuracy"] < 0.6
    assert trained.metrics["accuracy"] >= 0.9
    assert trained.sparsity["final"] != trained.sparsity["init"]  # bits really flipped


def test_loaded_bundle_gives_the_same_logits_as_the_in_memory_masked_model(tiny_bert, keyword_task, tmp_path):
    out = tmp_path / "m.bundle"
    train(_args(tiny_bert, keyword_task, out, max_steps=4, init_sparsity=0.3))
    bundle = load_bundle(out)
    task = get_task(str(keyword_task))
    # Rebuild the in-memory masked model: same seed, wrap, then copy the learned masks as scores.
    torch.manual_seed(0)
    model, _ = load_task_model(resolve_model(str(tiny_bert)), task.kind.auto_class, task.labels)
    model.load_state_dict(bundle.head, strict=False)
    wrap_model(
        model,
        MaskConfig(**{k: bundle.meta["mask"][k] for k in ("threshold", "init_sparsity", "blocks", "head", "seed")}),
    )
    for name, mask in bundle.masks.items():
        layer = model.get_submodule(name)
        with torch.no_grad():
            layer.scores.copy_(torch.where(mask, 1.0, -1.0))
    masked = load_masked(bundle)
    tokenizer = masked.tokenizer
    batch = next(iter(make_loader(task.features("dev", tokenizer, 128), task.kind.collate(tokenizer), 16)))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, masked.model(**inputs).logits)


def test_eval_reproduces_the_training_dev_metric_exactly(tiny_bert, keyword_task, tmp_path):
    out = tmp_path / "m.bundle"
    result = train(_args(tiny_bert, keyword_task, out, max_steps=5))
    evaluated = evaluate_bundle(out, split="dev")
    assert evaluated.metrics == result.metrics
    assert evaluated.trained_dev == result.metrics
    assert evaluate_bundle(out, split="test").metrics["n"] == 60


def test_bundle_describes_itself(tiny_bert, keyword_task, tmp_path):
    out = tmp_path / "m.bundle"
    train(_args(tiny_bert, keyword_task, out, max_steps=2, seed=3))
    meta = load_bundle(out).meta
    assert meta["task"]["name"] == "keywords" and meta["task"]["labels"] == ["pos", "neg", "food", "sport"]
    assert meta["base_model"]["source"]["kind"] == "path"
    assert meta["base_model"]["fingerprint"].startswith("sha256:")
    assert "classifier" not in meta["base_model"]["fingerprint_layers"]  # random head: stored, not hashed
    assert meta["mask"]["threshold"] == 0.01 and meta["mask"]["seed"] == 3 and meta["mask"]["block_ids"] == [2, 3]
    assert meta["training"]["max_steps"] == 2 and meta["training"]["lr"] == 1e-2
    assert abs(meta["sparsity"]["init"] - 0.05) < 0.01
    assert {"name", "shape", "init_sparsity", "final_sparsity"} <= set(meta["layers"][0])
    assert set(load_bundle(out).head) == {"classifier.weight", "classifier.bias"}


def test_bundle_on_another_base_model_is_refused(tiny_models, keyword_task, tmp_path):
    out = tmp_path / "m.bundle"
    train(_args(tiny_models["bert"], keyword_task, out, max_steps=1))
    other = tmp_path / "other-bert"
    model = transformers.AutoModel.from_pretrained(tiny_models["bert"])
    with torch.no_grad():
        model.encoder.layer[3].output.dense.weight.add_(0.001)
    model.save_pretrained(other)
    transformers.AutoTokenizer.from_pretrained(tiny_models["bert"]).save_pretrained(other)
    with pytest.raises(BundleError, match="different base model"):
        evaluate_bundle(out, model=str(other))
    with pytest.raises(BundleError, match="different base model|does not fit"):
        evaluate_bundle(out, model=str(tiny_models["distilbert"]))


def test_existing_output_is_never_overwritten_without_asking(tiny_bert, keyword_task, tmp_path):
    out = tmp_path / "m.bundle"
    out.write_bytes(b"precious")
    with pytest.raises(MaskctlError, match="already exists"):
        train(_args(tiny_bert, keyword_task, out, max_steps=1))
    assert out.read_bytes() == b"precious"
    train(_args(tiny_bert, keyword_task, out, max_steps=1, overwrite=True))
    assert load_bundle(out).task_name == "keywords"


def test_finetune_writes_a_plain_hugging_face_model(tiny_bert, keyword_task, tmp_path):
    out = tmp_path / "ft"
    result = train(_args(tiny_bert, keyword_task, out, method="finetune", lr=1e-3, epochs=1))
    model = transformers.AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.id2label[0] == "pos" and model.num_labels == 4
    record = (out / "maskctl_training.json").read_text()
    assert json.loads(record)["task"]["name"] == "keywords"
    assert str(keyword_task.parent) not in record and str(tiny_bert) not in record  # no machine paths
    assert 0.0 <= result.metrics["accuracy"] <= 1.0


@pytest.mark.parametrize("arch", ["roberta", "distilbert"])
def test_other_architectures_train_and_round_trip(tiny_models, keyword_task, tmp_path, arch):
    out = tmp_path / f"{arch}.bundle"
    result = train(_args(tiny_models[arch], keyword_task, out, max_steps=3))
    assert evaluate_bundle(out).metrics == result.metrics


def test_head_train_stores_the_trained_classifier(tiny_bert, keyword_task, tmp_path):
    out = tmp_path / "h.bundle"
    train(_args(tiny_bert, keyword_task, out, max_steps=3, head="train", seed=1))
    bundle = load_bundle(out)
    assert "classifier" not in bundle.masks
    torch.manual_seed(1)
    fresh, _ = load_task_model(
        resolve_model(str(tiny_bert)), "AutoModelForSequenceClassification", ["pos", "neg", "food", "sport"]
    )
    assert not torch.equal(bundle.head["classifier.weight"], fresh.classifier.weight)  # it trained


@pytest.mark.parametrize("training", [True, False])
def test_evaluation_puts_the_models_mode_back(tiny_bert, keyword_task, training):
    """Evaluating between training steps must not leave dropout off (nor turn it on)."""
    from transformers import AutoTokenizer

    from maskctl.evaluation import evaluate_model

    task = get_task(str(keyword_task))
    torch.manual_seed(0)
    net, _ = load_task_model(resolve_model(str(tiny_bert)), task.kind.auto_class, task.labels)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert))
    features = task.features("dev", tokenizer, 32)
    net.train(training)
    metrics = evaluate_model(net, task, features, tokenizer, 16, torch.device("cpu"))
    assert 0.0 <= metrics["score"] <= 1.0
    assert net.training is training and all(m.training is training for m in net.modules())
