"""MaskedModel and `maskctl predict`: many tasks on one resident model, every task kind."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from maskctl.bundle.format import load_bundle
from maskctl.errors import BundleError, MaskctlError
from maskctl.evaluation import argmax, collect_scores, make_loader
from maskctl.serving import Choice, Classification, MaskedModel, Tagging
from maskctl.serving.loading import load_masked
from maskctl.train_settings import TrainArgs
from maskctl.training.trainer import train
from tests.cli.inprocess import run_in_process


def _eval_predictions(path, data_dir):
    masked = load_masked(load_bundle(path))
    examples = masked.task.examples("dev", data_dir)
    features = masked.task.features("dev", masked.tokenizer, 128, data_dir)
    scores, _ = collect_scores(
        masked.model,
        make_loader(features, masked.task.kind.collate(masked.tokenizer), 8),
        masked.task,
        torch.device("cpu"),
    )
    return examples, argmax(scores), masked.task.labels


def test_predictions_equal_eval_for_every_kind(three_tasks):
    paths, data = three_tasks
    served = MaskedModel.from_bundles(list(paths.values()))
    assert served.tasks == ["keywords", "conll03", "swag"]
    for name, path in paths.items():
        examples, expected, labels = _eval_predictions(path, data[name])
        if name == "keywords":
            got = served.predict(name, [ex["text"] for ex in examples])
            assert all(isinstance(g, Classification) for g in got)
            assert [g.label for g in got] == [labels[i] for i in expected]
            assert abs(sum(got[0].probabilities.values()) - 1) < 1e-5
        elif name == "conll03":
            got = served.predict(name, [ex["tokens"] for ex in examples])
            assert all(isinstance(g, Tagging) for g in got)
            assert [g.tags for g in got] == [[labels[i] for i in seq] for seq in expected]
            assert len(got[0].tags) == len(got[0].tokens)
        else:
            got = served.predict(name, [{"context": ex["context"], "endings": ex["endings"]} for ex in examples])
            assert all(isinstance(g, Choice) for g in got)
            assert [g.choice for g in got] == expected


def test_switching_tasks_is_exact_and_restores_the_base(three_tasks):
    paths, _ = three_tasks
    served = MaskedModel.from_bundles(list(paths.values()))
    encoder = served.encoder
    pristine = {k: v.clone() for k, v in encoder.state_dict().items()}
    texts = ["the film was good", "a team and a match today"]
    first = served.predict("keywords", texts)
    served.predict("conll03", ["EU rejects German call"])
    served.predict("swag", [{"context": "The man", "endings": ["a", "b", "c", "d"]}])
    assert served.predict("keywords", texts) == first
    served.close()
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in pristine.items())


def test_resident_memory_does_not_grow_with_bundles_beyond_masks_and_heads(three_tasks):
    paths, _ = three_tasks

    def resident_bytes(served):
        seen, total = set(), 0
        for module in (served.encoder, *served._nets.values()):
            for p in module.parameters():
                if p.data_ptr() not in seen:
                    seen.add(p.data_ptr())
                    total += p.numel() * p.element_size()
        return total, served.memory()

    one, _ = resident_bytes(MaskedModel.from_bundles([paths["keywords"]]))
    three, memory = resident_bytes(MaskedModel.from_bundles(list(paths.values())))
    heads = sum(t.numel() * t.element_size() for path in paths.values() for t in load_bundle(path).head.values())
    assert three - one <= heads  # new parameters: only the other kinds' heads, no model copy
    assert memory["heads_bytes"] == heads and memory["flips_bytes"] > 0  # per task: flips and a head


def test_bad_bundle_sets_are_refused(three_tasks, tiny_models, keyword_task, tmp_path):
    paths, _ = three_tasks
    other = tmp_path / "d.bundle"
    train(
        TrainArgs(
            model=str(tiny_models["distilbert"]),
            task=str(keyword_task).replace("keywords.yaml", "keywords.yaml"),
            output=str(other),
            max_steps=1,
        )
    )
    with pytest.raises(BundleError):
        MaskedModel.from_bundles([paths["keywords"], other])
    with pytest.raises(BundleError, match="two bundles for task"):
        MaskedModel.from_bundles([paths["keywords"], paths["keywords"]])
    copy = tmp_path / "copy.bundle"
    copy.write_bytes(paths["keywords"].read_bytes())
    with pytest.raises(BundleError, match="two bundles for task 'keywords': keywords.bundle, copy.bundle"):
        MaskedModel.from_bundles([paths["keywords"], copy])  # the files are named
    with pytest.raises(MaskctlError, match="no bundle for task"):
        MaskedModel.from_bundles([paths["keywords"]]).predict("sst2", ["x"])


def test_a_finetuned_folder_as_model_is_checked_not_a_crash(three_tasks, tiny_bert, tmp_path):
    """A folder with its own head (finetuned or exported) passed as --model: its head has another
    shape than serving's, which used to end in transformers' size-mismatch traceback. The head is
    not the base's to check: the encoder's fingerprint decides (same weights: served; changed
    weights, as finetuning leaves them: one BundleError line)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    paths, _ = three_tasks
    same, changed = tmp_path / "same-encoder", tmp_path / "finetuned"
    for folder in (same, changed):
        net = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=7)
        if folder is changed:
            with torch.no_grad():
                net.bert.encoder.layer[3].attention.self.query.weight.add_(0.01)
        net.save_pretrained(folder)
        AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
    served = MaskedModel.from_bundles([paths["keywords"], paths["conll03"]], model=str(same))
    assert served.predict("keywords", ["alpha beta"])[0].label
    with pytest.raises(BundleError, match="different base model"):
        MaskedModel.from_bundles([paths["keywords"]], model=str(changed))
    with pytest.raises(BundleError, match="different base model"):
        load_masked(load_bundle(paths["keywords"]), model=str(changed))  # eval / predict / export


def test_predict_cli_streams_jsonl_and_reports_bad_lines(three_tasks, tmp_path):
    paths, _ = three_tasks
    lines = [
        '{"text": "the film was good"}',
        "plain text about a match",
        "{broken json",
        '{"tokens": ["EU", "rejects"]}',
        '{"context": "The man", "endings": ["a", "b", "c", "d"]}',
        '{"colour": "red"}',
    ]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    args = ["predict", *paths.values(), "--input", source, "--output", out]
    proc = run_in_process(*args)  # `maskctl predict ...`, in process (tests/cli/inprocess.py)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 4, 5]
    assert set(rows[0]["predictions"]) == {"keywords", "conll03"}  # text: classification and tagging
    assert set(rows[3]["predictions"]) == {"swag"}
    assert rows[2]["predictions"]["conll03"]["tokens"] == ["EU", "rejects"]
    assert "line 3: not valid JSON" in proc.stderr and "line 6:" in proc.stderr
    assert "2 of 6 input lines skipped" in proc.stderr
    strict = run_in_process(*args[:-2], "--strict", "--task", "keywords")
    assert strict.returncode == 2 and "input line 3" in strict.stderr and "Traceback" not in strict.stderr
    one = run_in_process("predict", paths["keywords"], "--text", "good film")
    assert json.loads(one.stdout)["predictions"]["keywords"]["label"] in ("pos", "neg", "food", "sport")


def test_the_serving_example_runs(three_tasks):
    """examples/serve_many_tasks.py, as the README shows it, on bundles of every kind."""
    from pathlib import Path

    paths, _ = three_tasks
    script = Path(__file__).resolve().parents[2] / "examples" / "serve_many_tasks.py"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, str(script), *map(str, paths.values())],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "loaded while serving: swag" in proc.stdout
    assert "no-such-task: error: request 6" in proc.stdout and "after unload: keywords, conll03" in proc.stdout
    assert "conll03: [(" in proc.stdout and "swag: " in proc.stdout


def test_a_serving_process_imports_nothing_training_or_data_reading_needs():
    """``maskctl serve`` and ``MaskedModel`` stay lean: no scikit-learn, scipy, pandas, pyarrow,
    datasets, numba or accelerate (a fresh interpreter, as a server starts)."""
    code = (
        "import sys; import maskctl.serving.http.app; from maskctl.serving import MaskedModel; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    )
    assert "torch" in loaded and "maskctl" in loaded
    assert not loaded & {
        "sklearn",
        "scipy",
        "pandas",
        "pyarrow",
        "datasets",
        "numba",
        "llvmlite",
        "accelerate",
        "seqeval",
        "matplotlib",
    }
