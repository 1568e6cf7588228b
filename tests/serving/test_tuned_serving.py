"""--also-train (masking/tuned.py): biases and LayerNorms trained beside the mask, stored as float16
deltas, change only the named tensors, evaluate as trained, and serve in mixed batches equal to each
task's merged model (every forward path), with the pristine weights back afterwards."""

from __future__ import annotations

import pytest
import torch

from maskctl.bundle.format import TUNED_FORMAT, load_bundle, read_meta
from maskctl.errors import BundleError, MaskctlError
from maskctl.experiments.evaluate import evaluate_bundle
from maskctl.masking.targets import num_blocks, parse_blocks
from maskctl.masking.tuned import parameter, tuned_names
from maskctl.serving import MaskedModel
from maskctl.serving.loading import check_tuned, load_base, load_masked
from maskctl.train_settings import TrainArgs
from maskctl.training.trainer import train
from tests.serving.test_mixed_batches import TEXTS, TOKENS, check_mixed_then_single, reference


@pytest.fixture(scope="module")
def tuned_keywords(tmp_path_factory, tiny_bert, keyword_task):
    """The keyword task as ``keywords-t``: masks, biases and LayerNorms of blocks 1-2 trained."""
    card = keyword_task.parent / "keywords-t.yaml"
    card.write_text(keyword_task.read_text().replace("name: keywords", "name: keywords-t"), encoding="utf-8")
    out = tmp_path_factory.mktemp("tuned") / "keywords-t.bundle"
    result = train(
        TrainArgs(
            model=str(tiny_bert),
            task=str(card),
            output=str(out),
            max_steps=4,
            batch_size=8,
            lr=2e-2,
            init_sparsity=0.15,
            seed=5,
            mask_blocks="1-2",
            also_train="bias+layernorm",
            tuned_lr=5e-2,
        )
    )
    return out, result


def test_only_the_named_tensors_change_and_are_stored_as_float16_deltas(tuned_keywords):
    path, _ = tuned_keywords
    bundle = load_bundle(path)
    base, _, _ = load_base(bundle.info, where=path)
    pristine = {k: v.clone() for k, v in base.state_dict().items()}
    expected = tuned_names(base, parse_blocks("1-2", num_blocks(base)), "bias+layernorm")
    assert expected and list(bundle.tuned) == expected == bundle.info.tuned.tensors
    assert {n.split(".")[3] for n in expected} == {"1", "2"}  # only inside the masked blocks
    assert any("LayerNorm" in n for n in expected) and any(n.endswith("query.bias") for n in expected)
    assert all(t.dtype == torch.float16 for t in bundle.tuned.values())
    assert read_meta(path)["format_version"] == TUNED_FORMAT
    assert sum(bool(t.abs().max() > 0) for t in bundle.tuned.values()) == len(expected)  # every one trained
    model = load_masked(bundle).model
    for name, value in model.state_dict().items():
        want = bundle.head[name] if name in bundle.head else pristine[name]  # the base's, or the stored head's
        if name.removesuffix(".weight") in bundle.masks:
            want = want * bundle.masks[name.removesuffix(".weight")]
        if name in bundle.tuned:
            want = want + bundle.tuned[name].float()
        assert torch.equal(value, want), name


def test_eval_scores_what_training_kept(tuned_keywords):
    path, result = tuned_keywords
    assert evaluate_bundle(path).metrics["score"] == result.metrics["score"]


def test_a_base_with_other_biases_is_refused(tuned_keywords):
    path, _ = tuned_keywords
    bundle = load_bundle(path)
    base, _, _ = load_base(bundle.info, where=path)
    with torch.no_grad():
        parameter(base, bundle.info.tuned.tensors[-1]).add_(1e-3)
    with pytest.raises(BundleError, match="tuned biases/LayerNorms of a different base model"):
        check_tuned(base, bundle.info, path, "tiny", "pass the model it was trained on")


def test_also_train_is_for_masking():
    with pytest.raises(MaskctlError, match="--also-train applies to masking"):
        TrainArgs(method="finetune", also_train="bias")


@pytest.mark.parametrize(
    "dense_from,kernel",
    [(64, "auto"), (1, "auto"), (10**9, "torch")],
    ids=["measured-switch", "all-dense-products", "plain-pytorch-terms"],
)
def test_mixed_batches_equal_each_tuned_task_merged(tuned_keywords, three_tasks, dense_from, kernel, monkeypatch):
    monkeypatch.setattr("maskctl.masking.served.DENSE_MIN_TOKENS", dense_from)
    if kernel == "torch":
        monkeypatch.setenv("MASKCTL_KERNEL", "torch")
    paths = {
        "keywords-t": tuned_keywords[0],
        "keywords": three_tasks[0]["keywords"],
        "conll03": three_tasks[0]["conll03"],
    }
    inputs = {"keywords-t": TEXTS, "keywords": TEXTS, "conll03": TOKENS}
    want = {name: reference(path, inputs[name]) for name, path in paths.items()}
    served = MaskedModel.from_bundles(list(paths.values()))
    # merged mode adds the deltas and takes them back when another task merges
    check_mixed_then_single(served, inputs, want, dense_from, (2, 32), ("keywords-t", "keywords", "keywords-t"))


def test_export_carries_the_tuned_values(tuned_keywords, tmp_path):
    """``maskctl export`` writes a plain model whose biases and LayerNorms are the tuned ones."""
    import transformers

    from maskctl.experiments.export import export_bundle

    path, _ = tuned_keywords
    folder = export_bundle(path, tmp_path / "hf")
    masked = load_masked(load_bundle(path)).model.state_dict()
    plain = transformers.AutoModelForSequenceClassification.from_pretrained(folder).state_dict()
    for name in load_bundle(path).tuned:
        assert torch.equal(plain[name], masked[name]), name
