"""Each of the paper's eleven tasks: its official files load through the real reader, encode,
and train for a step on a tiny model; evaluation goes through the real metric code."""

from __future__ import annotations

import pytest

from maskctl.bundle.format import load_bundle
from maskctl.errors import TaskError
from maskctl.experiments.evaluate import evaluate_bundle
from maskctl.models import load_tokenizer, resolve_model
from maskctl.tasks.registry import task_names
from maskctl.tasks.task import get_task
from maskctl.train_settings import TrainArgs
from maskctl.training.trainer import train

from .official_fixtures import WRITERS

EXPECTED = {  # task -> (train examples, dev examples, first train example's label)
    "sst2": (6, 6, "negative"),
    "mrpc": (5, 5, "not_equivalent"),
    "cola": (6, 6, "unacceptable"),
    "rte": (4, 4, "entailment"),
    "qnli": (4, 4, "entailment"),
    "trec": (27, 3, "ABBR"),
    "ag": (36, 4, "World"),
    "sem": (6, 6, "negative"),
    "pos": (2, 2, None),
    "conll03": (2, 2, None),
    "swag": (8, 8, "0"),
}


def test_thirteen_tasks_are_registered():
    assert set(task_names()) >= set(EXPECTED) | {"bbc-news", "wnut16"}
    assert len(task_names()) == 13


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_official_files_load_and_train_one_step(name, tmp_path, tiny_bert):
    data = tmp_path / "data"
    data.mkdir()
    WRITERS[name](data)
    task = get_task(name)
    train_rows, dev_rows = task.examples("train", data), task.examples("dev", data)
    n_train, n_dev, first_label = EXPECTED[name]
    assert (len(train_rows), len(dev_rows)) == (n_train, n_dev)
    if first_label is not None:
        assert train_rows[0]["label"] == first_label
    tokenizer = load_tokenizer(resolve_model(str(tiny_bert)), **task.kind.tokenizer_kwargs)
    assert len(task.features("train", tokenizer, 128, data)) == n_train
    out = tmp_path / f"{name}.bundle"
    result = train(
        TrainArgs(
            model=str(tiny_bert),
            task=name,
            data_dir=str(data),
            output=str(out),
            max_steps=1,
            batch_size=4,
            eval_batch_size=4,
        )
    )
    assert result.metrics["n"] == n_dev
    assert -1.0 <= result.metrics["score"] <= 1.0  # MCC for cola can be negative
    assert load_bundle(out).meta["task"]["name"] == name
    assert evaluate_bundle(out, data_dir=str(data)).metrics == result.metrics


def test_official_file_details(tmp_path):
    def examples(name, split):
        data = tmp_path / name
        data.mkdir(exist_ok=True)
        WRITERS[name](data)
        return get_task(name).examples(split, data)

    assert examples("sst2", "train")[0]["text"] == 'the film was good " quoted'  # GLUE: no quoting
    assert examples("trec", "test")[0]["text"].startswith("what is the caf\u00e9")  # Latin-1
    assert examples("ag", "test")[0]["text"] == "Title, number 0 the film was good"  # title + description
    pos = examples("pos", "train")[0]
    assert pos["tags"][3] == "-LRB-" and pos["tokens"][3] == "("  # bracket tags normalised
    conll = examples("conll03", "dev")
    assert conll[0]["tokens"][0] == "EU" and conll[0]["tags"][:3] == ["I-ORG", "O", "I-MISC"]  # DOCSTART skipped
    swag = examples("swag", "dev")[0]
    assert swag["context"] == "The man walks to the team." and swag["endings"][1] == "He plays the match."
    assert examples("mrpc", "dev")[0]["text_pair"] == "a bad plot and a poor actor"


@pytest.mark.parametrize(
    ("name", "mangle", "message"),
    [
        ("conll03", lambda d: (d / "eng.train").write_text("EU NNP I-ORG\n"), r"eng.train:1: 3 columns, expected 4"),
        ("sst2", lambda d: (d / "train.tsv").write_text("sentence\tlabel\nfine\t7\n"), r"train.tsv:2: label '7'"),
        (
            "rte",
            lambda d: (d / "train.tsv").write_text("index\tsentence1\tlabel\n0\tx\tentailment\n"),
            r"train.tsv:2: no field 'sentence2'",
        ),
        ("sst2", lambda d: (d / "train.tsv").write_text("sentence\tlabel\n"), "split is empty"),
        ("trec", lambda d: (d / "train_5500.label").write_text("no colon here\n"), r"train_5500.label:1: expected"),
        ("sst2", lambda d: (d / "train.tsv").unlink(), "train.tsv: the train file of task 'sst2' does not exist"),
    ],
)
def test_bad_files_name_the_file_and_line(tmp_path, name, mangle, message):
    WRITERS[name](tmp_path)
    mangle(tmp_path)
    with pytest.raises(TaskError, match=message):
        get_task(name).examples("train", tmp_path)


def test_hidden_test_labels_say_so(tmp_path):
    WRITERS["sst2"](tmp_path)
    with pytest.raises(TaskError, match="hides its test labels"):
        get_task("sst2").examples("test", tmp_path)


def test_hub_source_offline_points_to_data_dir(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(TaskError, match="--data-dir"):
        get_task("rte").examples("train")
