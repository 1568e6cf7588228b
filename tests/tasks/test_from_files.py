"""A task from a user's own data files: formats through datasets, columns, inferred kinds and
labels, dev carved from train, and one clear error for each thing a user can get wrong."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from maskctl.errors import MaskctlError, TaskError
from maskctl.tasks.from_files import DataFiles, card_from_files
from maskctl.tasks.kinds import infer_kind
from maskctl.tasks.kinds.multiple_choice import MultipleChoice
from maskctl.tasks.kinds.sequence_classification import SequenceClassification
from maskctl.tasks.task import Task
from maskctl.train_settings import TrainArgs


def write_csv(path: Path, header: list[str], rows: list[list[str]], delimiter: str = ",", bom: bool = False) -> Path:
    with path.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


REVIEWS = [[f"text {i} NA 007", ["pos", "neg", "meh"][i % 3]] for i in range(40)]


def test_csv_with_a_byte_order_mark_and_own_column_names(tmp_path):
    train = write_csv(tmp_path / "reviews-train.csv", ["review", "stars"], REVIEWS, bom=True)
    card = card_from_files(DataFiles(train=str(train), text_columns=("review",), label_column="stars"))
    assert card.name == "reviews" and card.kind == "sequence-classification" and card.metric == "accuracy"
    assert card.labels == ["meh", "neg", "pos"]  # sorted distinct values of the train file
    assert card.fields == {"text": "review", "label": "stars"}
    assert card.source["files"] == {"train": "reviews-train.csv"}  # a name, never a machine path
    task = Task.from_card(card)
    dev, rest = task.examples("dev"), task.examples("train")
    assert len(dev) == 4 and len(rest) == 36  # 10 % carved from train by default
    assert rest[0]["text"].endswith("NA 007")  # cells stay strings: no NaN, no 7
    assert (
        Task.from_card(
            card_from_files(
                DataFiles(train=str(train), text_columns=("review",), label_column="stars", validation_split=0.25)
            )
        )
        .examples("dev")
        .__len__()
        == 10
    )


def test_tsv_sentence_pair_and_numeric_labels_sorted_as_numbers(tmp_path):
    rows = [[f"a{i}", f"b{i}", str([2, 10, 1][i % 3])] for i in range(12)]
    train = write_csv(tmp_path / "pairs.tsv", ["s1", "s2", "y"], rows, delimiter="\t")
    card = card_from_files(DataFiles(train=str(train), text_columns=("s1", "s2"), label_column="y"))
    assert card.labels == ["1", "2", "10"]
    example = Task.from_card(card).examples("train")[0]
    assert example["text_pair"] is not None and example["text"].startswith("a")


def test_jsonl_tagging_is_inferred_from_a_column_of_lists(tmp_path):
    rows = [
        {"tokens": ["Paris", "is", "big"], "tags": ["B-loc", "O", "O"]},
        {"tokens": ["Ann", "runs"], "tags": ["B-per", "O"]},
    ] * 10
    card = card_from_files(DataFiles(train=str(write_jsonl(tmp_path / "ner.jsonl", rows))))
    assert card.kind == "token-tagging" and card.metric == "seqeval-f1"
    assert card.labels == ["B-loc", "B-per", "O"]


def test_json_array_multiple_choice_labels_are_ending_indices(tmp_path):
    rows = [{"context": f"c{i}", "endings": ["w", "x", "y", "z"], "label": i % 2} for i in range(10)]
    path = tmp_path / "mc.json"
    path.write_text(json.dumps(rows), encoding="utf-8")  # one JSON array, not lines
    card = card_from_files(DataFiles(train=str(path)))
    assert card.kind == "multiple-choice" and card.labels == ["0", "1", "2", "3"]  # 2 and 3 never occur


def test_parquet_and_a_validation_file(tmp_path):
    import datasets

    train, dev = tmp_path / "t.parquet", tmp_path / "d.parquet"
    datasets.Dataset.from_dict({"text": ["good", "bad"] * 5, "label": [1, 0] * 5}).to_parquet(str(train))
    datasets.Dataset.from_dict({"text": ["fine"], "label": [1]}).to_parquet(str(dev))
    card = card_from_files(DataFiles(train=str(train), validation=str(dev)))
    assert card.labels == ["0", "1"] and "dev_from_train" not in card.source
    assert Task.from_card(card).examples("dev") == [{"text": "fine", "text_pair": None, "label": "1"}]


def test_input_from_row_uses_the_cards_column_names():
    input_from_row = SequenceClassification().input_from_row
    assert input_from_row({"text": "review", "label": "stars"}, {"review": "hi"})["text"] == "hi"
    pair = input_from_row({"text": ["s1", "s2"], "label": "y"}, {"s1": "a", "s2": "b"})
    assert (pair["text"], pair["text_pair"]) == ("a", "b")
    assert input_from_row({"text": "review", "label": "y"}, {"text": "own", "review": "x"})["text"] == "own"
    own_pair = input_from_row({"text": ["s1", "s2"]}, {"s1": "a", "s2": "b", "text_pair": "mine"})
    assert (own_pair["text"], own_pair["text_pair"]) == ("a", "mine")


def test_each_kind_joins_its_own_columns():
    fields = {"context": ["c1", "c2"], "endings": ["e0", "e1", "e2"], "label": "y"}
    item = MultipleChoice().input_from_row(fields, {"c1": "She", "c2": "opened", "e0": "a", "e1": "b", "e2": "c"})
    assert item["context"] == "She opened" and item["endings"] == ["a", "b", "c"]
    item = SequenceClassification().input_from_row({"text": ["a", "b", "c"]}, {"a": "x", "b": "y", "c": "z"})
    assert item["text"] == "x" and "text_pair" not in item  # three text columns: not a pair


@pytest.mark.parametrize(
    "columns,rows,label_column,kind",
    [
        (["text", "label"], [{"text": "a", "label": "pos"}], None, "sequence-classification"),
        (["tokens", "tags"], [{"tokens": ["a"], "tags": ["O"]}], None, "token-tagging"),
        (
            ["tokens", "label", "tags"],
            [{"tokens": ["a"], "label": "x", "tags": ["O"]}],
            None,
            "sequence-classification",
        ),
        (["words", "ner"], [{"words": ["a"], "ner": ["O"]}], "ner", "token-tagging"),
        (
            ["context", "endings", "label"],
            [{"context": "c", "endings": ["a", "b"], "label": 0}],
            None,
            "multiple-choice",
        ),
        (["endings", "label"], [{"endings": ["a"], "label": ["O"]}], None, "token-tagging"),  # lists of labels: tagging
    ],
)
def test_the_kinds_recognise_their_files(columns, rows, label_column, kind):
    assert infer_kind(columns, rows, label_column) == kind


@pytest.mark.parametrize(
    "name,content,fragments",
    [
        ("empty.csv", "", ["empty.csv: the file is empty"]),
        ("header.csv", "text,label\n", ["header.csv: the file has no rows"]),
        ("mixed.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": "pos"}\n', ["mixes types"]),
        ("broken.jsonl", '{"text": "a", "label": "x"}\n{"text": "b"\n', ["not a readable json file"]),
        ("bad.parquet", "not parquet at all", ["not a readable parquet file"]),
        ("data.xlsx", "x", ["cannot tell the format", ".parquet"]),
        ("blank.csv", "text,label\nhello,\n", ["blank.csv:2: empty label"]),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path, name, content, fragments):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TaskError) as info:
        card_from_files(DataFiles(train=str(path)))
    text = f"{info.value.message} — {info.value.fix}"
    assert "\n" not in text
    for fragment in fragments:
        assert fragment in text


def test_missing_column_names_the_file_its_columns_and_the_flag(tmp_path):
    train = write_csv(tmp_path / "train.csv", ["review", "stars"], REVIEWS)
    with pytest.raises(TaskError) as info:
        card_from_files(DataFiles(train=str(train), label_column="stars"))
    assert "train.csv: no column 'text'" in info.value.message and "review, stars" in info.value.message
    assert "--text-column" in info.value.fix
    with pytest.raises(TaskError) as info:
        card_from_files(DataFiles(train=str(train), text_columns=("review",)))
    assert "--label-column" in info.value.fix


def test_a_dev_label_the_train_file_lacks_names_file_line_and_fix(tmp_path):
    train = write_csv(tmp_path / "train.csv", ["text", "label"], REVIEWS)
    dev = write_csv(tmp_path / "dev.csv", ["text", "label"], [["x", "pos"], ["y", "great"]])
    task = Task.from_card(card_from_files(DataFiles(train=str(train), validation=str(dev))))
    with pytest.raises(TaskError) as info:
        task.examples("validation")  # the Hub's name for dev
    assert info.value.message.startswith(f"{dev}:3: label 'great'")
    assert "train file" in info.value.fix


def test_train_args_check_the_data_flags_before_loading(tmp_path):
    with pytest.raises(MaskctlError, match="--text-column needs --train-file"):
        TrainArgs(text_column=["review"])
    with pytest.raises(MaskctlError, match="not both"):
        TrainArgs(train_file="a.csv", validation_file="b.csv", validation_split=0.2)
    with pytest.raises(MaskctlError, match="--task or --train-file"):
        TrainArgs(train_file="a.csv", task="sst2")
    with pytest.raises(MaskctlError, match="--validation-split"):
        TrainArgs(train_file="a.csv", validation_split=1.5)
    assert TrainArgs(train_file="a.csv", text_column="review").text_column == ["review"]  # from a recipe
    assert TrainArgs(train_file="a.csv").record()["task"] is None
