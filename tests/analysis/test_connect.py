"""Mode connectivity (paper Fig. 6): endpoints equal direct evaluations, refusals are one line."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from maskctl.analysis import connect as connect_module
from maskctl.analysis.connect import ConnectError, _set, mode_connectivity
from maskctl.bundle.format import load_bundle
from maskctl.devices import resolve_device
from maskctl.errors import MaskctlError
from maskctl.evaluation import collect_scores, evaluate_model, make_loader
from maskctl.experiments.evaluate import evaluate_bundle
from maskctl.masking.model import apply_masks
from maskctl.models import load_task_model, load_tokenizer, resolve_model
from maskctl.serving.loading import load_base, load_masked
from maskctl.tasks.card import TaskCard
from maskctl.tasks.task import Task
from tests.analysis.conftest import run
from tests.conftest import PNG

CPU = resolve_device("cpu")


@pytest.fixture(scope="module")
def connected(trained, tmp_path_factory):
    """The analysis on a mask and a finetuned model, with the logits of every model it scored."""
    out = tmp_path_factory.mktemp("connect")
    seen = {"count": 0, "recorded": 0, "last": None}
    logits = {}

    def recording(model, task, features, tokenizer, batch_size, device, progress=None):
        seen["count"] += 1
        seen["last"] = _logits(model, task, features, tokenizer)
        return evaluate_model(model, task, features, tokenizer, batch_size, device, progress)

    def on_point(line, alpha, metrics):
        if seen["count"] != seen["recorded"]:  # a new evaluation (endpoints are scored once)
            logits[(line, alpha)] = seen["last"]
            seen["recorded"] = seen["count"]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(connect_module, "evaluate_model", recording)
        result = mode_connectivity(
            trained["a"], trained["finetuned"], points=5, out_dir=out, device="cpu", on_point=on_point
        )
    return result, out, logits


def _logits(model, task, features, tokenizer) -> torch.Tensor:
    scores, _ = collect_scores(model, make_loader(features, task.kind.collate(tokenizer), 64), task, CPU)
    return torch.stack(scores)


def _features(bundle, task, tokenizer):
    return task.features("dev", tokenizer, bundle.meta["training"]["max_length"])


def _finetuned(trained, task):
    model, new_keys = load_task_model(resolve_model(str(trained["finetuned"])), task.kind.auto_class, task.labels)
    assert not new_keys
    return model.eval()


def _row(result, line, alpha):
    row = next(r for r in result.rows if r["line"] == line and r["alpha"] == alpha)
    return {k: v for k, v in row.items() if k not in ("line", "alpha", "endpoint")}


def test_the_masked_end_is_exactly_what_eval_scores(connected, trained):
    result, _, logits = connected
    expected = evaluate_bundle(trained["a"], device="cpu").metrics
    assert _row(result, "finetuned-masked", 1.0) == expected
    assert _row(result, "pretrained-masked", 1.0) == expected
    masked = load_masked(load_bundle(trained["a"]))
    features = _features(masked.bundle, masked.task, masked.tokenizer)
    assert torch.equal(
        logits[("finetuned-masked", 1.0)], _logits(masked.model, masked.task, features, masked.tokenizer)
    )


def test_the_finetuned_end_is_exactly_the_finetuned_folder(connected, trained):
    result, _, logits = connected
    bundle = load_bundle(trained["a"])
    task = Task.from_card(TaskCard.from_dict(bundle.info.task.card))
    tokenizer = load_tokenizer(resolve_model(str(trained["finetuned"])))
    direct = evaluate_model(_finetuned(trained, task), task, _features(bundle, task, tokenizer), tokenizer, 64, CPU)
    recorded = json.loads((trained["finetuned"] / "maskctl_training.json").read_text())["metrics"]["dev"]
    assert _row(result, "finetuned-masked", 0.0) == direct == recorded
    assert _row(result, "pretrained-finetuned", 1.0) == direct
    features = _features(bundle, task, tokenizer)
    assert torch.equal(logits[("finetuned-masked", 0.0)], _logits(_finetuned(trained, task), task, features, tokenizer))


def test_the_pretrained_ends_carry_each_endpoints_head(connected, trained):
    result, _, logits = connected
    bundle = load_bundle(trained["a"])
    head_keys = bundle.meta["head_tensors"]
    assert head_keys == ["classifier.bias", "classifier.weight"]
    net, source, task = load_base(bundle.info)
    tokenizer = load_tokenizer(source)
    features = _features(bundle, task, tokenizer)
    net.load_state_dict(bundle.head, strict=False)
    apply_masks(net, {"classifier": bundle.masks["classifier"]})  # the masked model's head, nothing else
    with_masked_head = evaluate_model(net, task, features, tokenizer, 64, CPU)
    masked_head_logits = _logits(net, task, features, tokenizer)
    tuned = _finetuned(trained, task).state_dict()
    net.load_state_dict({k: tuned[k] for k in head_keys}, strict=False)
    with_finetuned_head = evaluate_model(net, task, features, tokenizer, 64, CPU)
    assert _row(result, "pretrained-masked", 0.0) == with_masked_head
    assert _row(result, "pretrained-finetuned", 0.0) == with_finetuned_head
    assert torch.equal(logits[("pretrained-masked", 0.0)], masked_head_logits)
    assert torch.equal(logits[("pretrained-finetuned", 0.0)], _logits(net, task, features, tokenizer))
    # Four different models at the four endpoints, so every equality above can fail.
    ends = [
        logits[key]
        for key in (
            ("finetuned-masked", 0.0),
            ("finetuned-masked", 1.0),
            ("pretrained-masked", 0.0),
            ("pretrained-finetuned", 0.0),
        )
    ]
    assert all(not torch.equal(x, y) for i, x in enumerate(ends) for y in ends[i + 1 :])


def test_a_midpoint_interpolates_every_tensor_embeddings_included(connected, trained):
    result, _, logits = connected
    bundle = load_bundle(trained["a"])
    net, source, task = load_base(bundle.info)
    net.load_state_dict(bundle.head, strict=False)
    apply_masks(net, bundle.masks)
    masked = {k: v.clone() for k, v in net.state_dict().items() if v.is_floating_point()}
    tuned = _finetuned(trained, task).state_dict()
    assert not torch.equal(
        masked["bert.embeddings.word_embeddings.weight"], tuned["bert.embeddings.word_embeddings.weight"]
    )  # finetuning moved them
    net.load_state_dict({k: torch.lerp(tuned[k], masked[k], 0.75) for k in masked}, strict=False)
    tokenizer = load_tokenizer(source)
    features = _features(bundle, task, tokenizer)
    expected = evaluate_model(net, task, features, tokenizer, 64, CPU)
    assert _row(result, "finetuned-masked", 0.75) == expected
    assert torch.equal(logits[("finetuned-masked", 0.75)], _logits(net, task, features, tokenizer))
    assert len(logits) == 13  # 3 lines x 5 points, the two shared endpoints scored once


def test_rows_table_and_figure(connected):
    result, out, _ = connected
    assert [(r["line"], r["alpha"]) for r in result.rows[:5]] == [
        ("finetuned-masked", a) for a in (0.0, 0.25, 0.5, 0.75, 1.0)
    ]
    assert len(result.rows) == 15 and {r["line"] for r in result.rows} == {
        "finetuned-masked",
        "pretrained-finetuned",
        "pretrained-masked",
    }
    assert [r["endpoint"] for r in result.rows[10:]] == ["pretrained+masked head", "", "", "", "masked"]
    saved = json.loads((out / "connect.json").read_text())
    assert saved["rows"] == result.rows and "head" in saved["meta"]["pretrained_head"]
    assert "accuracy" in (out / "connect.csv").read_text().splitlines()[0]
    assert (out / "connect.png").read_bytes()[:8] == PNG


def test_set_copies_the_endpoints_exactly():
    start = {"w": torch.tensor([0.1, -3.0, 7.25])}
    end = {"w": torch.tensor([1e-8, 2.0, -0.3])}
    target = {"w": torch.zeros(3)}
    _set(target, start, end, 0.0)
    assert torch.equal(target["w"], start["w"])
    _set(target, start, end, 1.0)
    assert torch.equal(target["w"], end["w"])
    _set(target, start, end, 0.5)
    assert torch.allclose(target["w"], (start["w"] + end["w"]) / 2)


def test_a_finetuned_model_of_another_task_is_refused(trained, binary_task, tmp_path):
    other = tmp_path / "ft-binary"
    run(trained["pretrained"], binary_task, other, method="finetune", max_steps=1)
    with pytest.raises(ConnectError, match="task 'sentiment'") as info:
        mode_connectivity(trained["a"], other, points=2, device="cpu")
    assert "\n" not in str(info.value)


def test_reordered_labels_without_a_record_are_refused(trained, tmp_path):
    copy = tmp_path / "ft"
    shutil.copytree(trained["finetuned"], copy)
    (copy / "maskctl_training.json").unlink()
    config = json.loads((copy / "config.json").read_text())
    labels = list(config["id2label"].values())
    config["id2label"] = {str(i): label for i, label in enumerate(reversed(labels))}
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConnectError, match="has labels"):
        mode_connectivity(trained["a"], copy, points=2, device="cpu")


def test_another_architecture_and_bad_arguments_are_refused(trained, tiny_models, keyword_task, tmp_path):
    distil = tmp_path / "ft-distil"
    run(tiny_models["distilbert"], keyword_task, distil, method="finetune", max_steps=1)
    with pytest.raises(ConnectError, match="distilbert model"):
        mode_connectivity(trained["a"], distil, points=2, device="cpu")
    with pytest.raises(ConnectError, match="does not exist"):
        mode_connectivity(trained["a"], tmp_path / "missing", points=2, device="cpu")
    with pytest.raises(MaskctlError, match="too few"):
        mode_connectivity(trained["a"], trained["finetuned"], points=1)
