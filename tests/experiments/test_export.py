"""Export: a plain Hugging Face folder that predicts what `maskctl eval` scores, per task kind."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import transformers

from maskctl.bundle.format import load_bundle
from maskctl.errors import MaskctlError
from maskctl.evaluation import argmax, collect_scores, make_loader, task_metrics
from maskctl.experiments.evaluate import evaluate_bundle
from maskctl.experiments.export import export_bundle
from maskctl.serving.loading import load_masked
from maskctl.train_settings import TrainArgs
from maskctl.training.trainer import train
from tests.tasks.official_fixtures import WRITERS

KINDS = {
    "keywords": "AutoModelForSequenceClassification",
    "conll03": "AutoModelForTokenClassification",
    "swag": "AutoModelForMultipleChoice",
}


def _bundle(name, tiny_bert, keyword_task, tmp_path):
    data = None
    task = str(keyword_task) if name == "keywords" else name
    if name != "keywords":
        data = tmp_path / "data"
        data.mkdir()
        WRITERS[name](data)
    out = tmp_path / f"{name}.bundle"
    train(
        TrainArgs(
            model=str(tiny_bert),
            task=task,
            data_dir=str(data) if data else None,
            output=str(out),
            max_steps=2,
            batch_size=4,
            lr=1e-2,
            init_sparsity=0.2,
        )
    )
    return out, data


@pytest.mark.parametrize("name", sorted(KINDS))
def test_exported_model_gives_the_same_logits_as_eval(name, tiny_bert, keyword_task, tmp_path):
    path, data = _bundle(name, tiny_bert, keyword_task, tmp_path)
    folder = export_bundle(path, tmp_path / "hf")
    masked = load_masked(load_bundle(path))
    plain = getattr(transformers, KINDS[name]).from_pretrained(folder).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    task = masked.task
    features = task.features("dev", tokenizer, 128, data)
    loader = make_loader(features, task.kind.collate(tokenizer), 8)
    exported_scores, golds = collect_scores(plain, loader, task, torch.device("cpu"))
    masked_scores, _ = collect_scores(masked.model, loader, task, torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(exported_scores, masked_scores))
    metrics = task_metrics(task, golds, argmax(exported_scores))
    assert metrics["score"] == evaluate_bundle(path, data_dir=data).metrics["score"]
    assert plain.config.id2label == dict(enumerate(task.labels))
    assert json.loads((folder / "maskctl_export.json").read_text())["task"]["name"] == task.name


def test_exported_folder_loads_without_maskctl(tiny_bert, keyword_task, tmp_path):
    path, _ = _bundle("keywords", tiny_bert, keyword_task, tmp_path)
    folder = export_bundle(path, tmp_path / "hf")
    code = (
        "import sys; sys.modules['maskctl'] = None\n"  # any `import maskctl` now fails
        "import torch, transformers\n"
        f"m = transformers.AutoModelForSequenceClassification.from_pretrained({str(folder)!r}).eval()\n"
        f"t = transformers.AutoTokenizer.from_pretrained({str(folder)!r})\n"
        "with torch.no_grad():\n"
        "    print(m.config.id2label[int(m(**t(['the film was good'], return_tensors='pt')).logits.argmax())])\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    masked = load_masked(load_bundle(path))
    inputs = masked.tokenizer(["the film was good"], return_tensors="pt")
    with torch.no_grad():
        expected = masked.task.labels[int(masked.model(**inputs).logits.argmax())]
    assert proc.stdout.strip() == expected


def test_export_never_replaces_an_existing_folder(tiny_bert, keyword_task, tmp_path):
    path, _ = _bundle("keywords", tiny_bert, keyword_task, tmp_path)
    target = tmp_path / "hf"
    target.mkdir()
    (target / "mine.txt").write_text("keep")
    with pytest.raises(MaskctlError, match="already exists"):
        export_bundle(path, target)
    assert (target / "mine.txt").read_text() == "keep"
    export_bundle(path, target, overwrite=True)
    assert not (target / "mine.txt").exists() and (target / "config.json").is_file()
    with pytest.raises(MaskctlError, match="format"):
        export_bundle(path, tmp_path / "x", fmt="onnx")
