"""Ensembles: voting rules by hand, refusals, one resident model, every task kind."""

from __future__ import annotations

import json

import pytest
import torch

from maskctl.bundle.format import load_bundle
from maskctl.errors import BundleError, MaskctlError
from maskctl.experiments import ensemble as ensemble_module
from maskctl.experiments.ensemble import combine, run_ensemble
from maskctl.masking.resident import ResidentModel
from maskctl.serving.loading import load_masked
from maskctl.train_settings import TrainArgs
from maskctl.training.trainer import train
from tests.conftest import write_task
from tests.tasks.official_fixtures import WRITERS


def test_voting_rules_match_hand_computation():
    # 3 members, 2 examples, 3 classes.
    m1 = [torch.tensor([2.0, 1.0, 0.0]), torch.tensor([0.0, 3.0, 0.0])]
    m2 = [torch.tensor([0.0, 1.5, 0.0]), torch.tensor([0.0, 0.0, 1.0])]
    m3 = [torch.tensor([0.0, 1.2, 1.0]), torch.tensor([2.0, 0.0, 0.0])]
    members = [m1, m2, m3]
    # Labels: example 0 -> [0, 1, 1]: majority 1. Example 1 -> [1, 2, 0]: a three-way tie, broken by
    # summed probabilities.
    probs = [torch.stack([m[1] for m in members]).softmax(-1).sum(0)]
    tie_winner = int(probs[0].argmax())
    assert [int(s.argmax()) for s in combine(members, "label")] == [1, tie_winner]
    # Logits: example 0 sums to [2.0, 3.7, 1.0] -> 1; example 1 sums to [2, 3, 1] -> 1.
    assert [int(s.argmax()) for s in combine(members, "logit")] == [1, 1]
    summed = [torch.stack([m[i] for m in members]).softmax(-1).sum(0) for i in range(2)]
    assert [int(s.argmax()) for s in combine(members, "prob")] == [int(s.argmax()) for s in summed]
    # Two members tie 1:1 on example 0 -> the label with more summed probability wins (class 0 here).
    two = combine([[torch.tensor([3.0, 0.0])], [torch.tensor([0.0, 0.5])]], "label")
    assert int(two[0].argmax()) == 0
    with pytest.raises(MaskctlError):
        combine(members, "median")


@pytest.fixture(scope="module")
def keyword_bundles(tmp_path_factory, tiny_bert, keyword_task):
    root = tmp_path_factory.mktemp("ens")
    paths = []
    for seed in range(3):
        out = root / f"m{seed}.bundle"
        train(
            TrainArgs(
                model=str(tiny_bert),
                task=str(keyword_task),
                output=str(out),
                max_steps=3,
                lr=1e-2,
                batch_size=16,
                seed=seed,
            )
        )
        paths.append(out)
    return paths


def test_ensemble_scores_members_and_votes(keyword_bundles, tmp_path):
    out = tmp_path / "pred.jsonl"
    result = run_ensemble(keyword_bundles, by="best", split="test", predictions=out)
    assert len(result.members) == 3 and set(result.rules) == {"label", "logit", "prob"}
    assert result.chosen == max(
        ("label", "logit", "prob"), key=lambda r: (result.dev_scores[r], -["label", "logit", "prob"].index(r))
    )
    for path, metrics in result.members:  # each member scores what `maskctl eval` scores
        from maskctl.experiments.evaluate import evaluate_bundle

        assert metrics["score"] == evaluate_bundle(path, split="test").metrics["score"]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 60 and len(rows[0]["members"]) == 3 and rows[0]["gold"] in ("pos", "neg", "food", "sport")


def test_base_model_is_loaded_once_and_memory_holds_one_model(keyword_bundles, monkeypatch):
    calls, peaks = [], []
    real_load, real_apply = ensemble_module.load_base, ResidentModel.apply

    def counting_load(*args, **kwargs):
        calls.append(1)
        return real_load(*args, **kwargs)

    def measuring_apply(self, masks, head=None, key=None, model=None, tuned=None):
        real_apply(self, masks, head, key, model, tuned)
        params = sum(p.numel() * p.element_size() for p in self.model.parameters())
        peaks.append((params, self.saved_bytes()))

    monkeypatch.setattr(ensemble_module, "load_base", counting_load)
    monkeypatch.setattr(ResidentModel, "apply", measuring_apply)
    run_ensemble(keyword_bundles, by="logit")
    assert len(calls) == 1
    params = {p for p, _ in peaks}
    assert len(params) == 1  # the resident parameters never grow
    model_bytes = params.pop()
    assert max(extra for _, extra in peaks) < 0.25 * model_bytes  # saved values: a fraction of one model


def test_resident_model_restores_weights_bit_for_bit(keyword_bundles):
    first, second = (load_bundle(p) for p in keyword_bundles[:2])
    merged = load_masked(first)
    from maskctl.serving.loading import load_base

    net, _, _ = load_base(first.info, where=first.path)
    pristine = {k: v.clone() for k, v in net.state_dict().items()}
    resident = ResidentModel(net)
    inputs = {"input_ids": torch.tensor([[2, 5, 9, 3]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
    with torch.no_grad():
        resident.apply(first.masks, first.head)
        a = net(**inputs).logits
        assert torch.equal(a, merged.model(**inputs).logits)  # same as the merged eval model
        resident.apply(second.masks, second.head)
        resident.apply(first.masks, first.head)
        assert torch.equal(net(**inputs).logits, a)  # switching back gives identical outputs
    resident.restore()
    now = {k.replace(".base_layer.", "."): v for k, v in net.state_dict().items()}  # the masked layers are served
    assert all(torch.equal(v, now[k]) for k, v in pristine.items())


def test_mixed_base_models_and_label_sets_are_refused(keyword_bundles, keyword_task, tiny_bert, tiny_models, tmp_path):
    other_base = tmp_path / "d.bundle"
    train(TrainArgs(model=str(tiny_models["distilbert"]), task=str(keyword_task), output=str(other_base), max_steps=1))
    with pytest.raises(BundleError, match=f"{other_base.name} has another base model"):
        run_ensemble([keyword_bundles[0], other_base])
    card = write_task(tmp_path / "three")
    card.write_text(card.read_text().replace("labels: [pos, neg, food, sport]", "labels: [pos, neg, food, sport, x]"))
    other_labels = tmp_path / "l.bundle"
    train(TrainArgs(model=str(tiny_bert), task=str(card), output=str(other_labels), max_steps=1))
    with pytest.raises(BundleError, match="another label set"):
        run_ensemble([keyword_bundles[0], keyword_bundles[1], other_labels])
    with pytest.raises(MaskctlError, match="at least two"):
        run_ensemble([keyword_bundles[0]])


@pytest.mark.parametrize("name", ["conll03", "swag"])
def test_tagging_and_choice_ensembles(name, tiny_bert, tmp_path):
    WRITERS[name](tmp_path)
    paths = []
    for seed in range(2):
        out = tmp_path / f"{name}{seed}.bundle"
        train(
            TrainArgs(
                model=str(tiny_bert),
                task=name,
                data_dir=str(tmp_path),
                output=str(out),
                max_steps=1,
                batch_size=4,
                seed=seed,
            )
        )
        paths.append(out)
    result = run_ensemble(paths, by="prob", data_dir=str(tmp_path), predictions=tmp_path / "p.jsonl")
    assert result.chosen == "prob" and result.rules["prob"]["n"] == {"conll03": 2, "swag": 8}[name]
    first = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])
    if name == "conll03":  # votes per word
        assert isinstance(first["prediction"], list) and len(first["prediction"]) == len(first["gold"])
    else:
        assert first["prediction"] in ("0", "1", "2", "3")
