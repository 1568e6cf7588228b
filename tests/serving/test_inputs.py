"""``maskctl predict``'s inputs and output as library calls: which source is read how, what is
refused before any model loads, columns read as text / text_pair, and the JSON lines written
(atomically, never when every input was skipped). The model here is a stand-in that answers
rows with a "text"; the real one is exercised by tests/cli and tests/serving/test_model.py."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import pytest

from maskctl.errors import MaskctlError
from maskctl.serving.inputs import PredictionInputs, renamed_columns
from maskctl.serving.results import RequestError
from maskctl.serving.stream import StreamStats, predict_inputs, refuse_all_skipped, write_predictions


@dataclass
class Echo:
    text: str


class TextModel:
    """Answers every input that has a text; a RequestError for the others."""

    tasks = ("echo",)

    def task(self, name):
        if name != "echo":
            raise MaskctlError(f"no task {name!r}", "load it")

    def predict_many(self, requests, batch_size=32):
        return [
            Echo(item["text"])
            if isinstance(item, dict) and "text" in item
            else Echo(item)
            if isinstance(item, str)
            else RequestError(i, name, 'needs "text"', "give a text")
            for i, (name, item) in enumerate(requests)
        ]


def test_exactly_one_source_and_one_pair_per_text():
    with pytest.raises(MaskctlError, match="give either --input"):
        PredictionInputs.read()
    with pytest.raises(MaskctlError, match="give either --input"):
        PredictionInputs.read("x.jsonl", ["a"])
    with pytest.raises(MaskctlError, match="1 --text-pair for 2 --text"):
        PredictionInputs.read(None, ["a", "b"], ["p"])


def test_refused_before_the_model_loads(tmp_path):
    taken = tmp_path / "out.jsonl"
    taken.write_text("old\n")
    with pytest.raises(MaskctlError, match="already exists"):
        PredictionInputs.read(None, ["a"], output=taken)
    assert PredictionInputs.read(None, ["a"], output=taken, overwrite=True).texts == [("a", None)]
    with pytest.raises(MaskctlError, match="does not exist"):
        PredictionInputs.read(str(tmp_path / "missing.csv"))


def test_a_table_file_is_read_whole_and_a_lines_file_streamed(tmp_path):
    table = tmp_path / "in.csv"
    table.write_text("review,stars\ngood,5\nbad,1\n", encoding="utf-8")
    inputs = PredictionInputs.read(str(table))
    assert inputs.columns == ["review", "stars"]
    assert list(inputs.rows()) == [(2, {"review": "good", "stars": "5"}), (3, {"review": "bad", "stars": "1"})]
    with pytest.raises(ValueError):
        inputs.lines().__enter__()
    lines = tmp_path / "in.jsonl"  # JSON lines are streamed, not read as a table
    lines.write_text('{"text": "a"}\nplain\n', encoding="utf-8")
    streamed = PredictionInputs.read(str(lines))
    assert streamed.table is None and streamed.columns is None
    with streamed.lines() as handle:
        assert [line.strip() for line in handle] == ['{"text": "a"}', "plain"]
    assert handle.closed


def test_texts_become_json_lines_with_their_pairs():
    inputs = PredictionInputs.read(None, ["a", "b"], ["x", "y"])
    with inputs.lines() as lines:
        assert [json.loads(line) for line in lines] == [
            {"text": "a", "text_pair": "x"},
            {"text": "b", "text_pair": "y"},
        ]
    with PredictionInputs.read(None, ["a"]).lines() as lines:
        assert [json.loads(line) for line in lines] == [{"text": "a"}]


def test_text_columns_are_read_as_text_and_text_pair(tmp_path):
    table = tmp_path / "pairs.csv"
    table.write_text("s1,s2,text,y\nhello,world,old,1\n", encoding="utf-8")
    inputs = PredictionInputs.read(str(table), text_columns=["s1", "s2"])  # a column named text gives way
    assert list(inputs.rows()) == [(2, {"s1": "hello", "s2": "world", "y": "1", "text": "hello", "text_pair": "world"})]
    with pytest.raises(MaskctlError, match="has no column 'nope'; its columns: s1, s2, text, y"):
        PredictionInputs.read(str(table), text_columns=["nope"])
    with pytest.raises(MaskctlError, match="3 --text-column given"):
        renamed_columns(inputs.table, ["s1", "s2", "y"])
    with pytest.raises(MaskctlError, match="names a column of a csv"):
        PredictionInputs.read(None, ["a"], text_columns=["s1"])


def test_predictions_are_written_as_json_lines_with_progress():
    inputs = PredictionInputs.read(None, ["a", "b"])
    out, seen = io.StringIO(), []
    stats = write_predictions(TextModel(), inputs, stream=out, progress=seen.append)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["predictions"]["echo"]["text"] for r in rows] == ["a", "b"] and [r["line"] for r in rows] == [1, 2]
    assert (stats.lines, stats.skipped, seen) == (2, 0, [2, 2])  # one chunk: both read before the first row


def test_unusable_lines_are_skipped_and_all_skipped_writes_nothing(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "ok"}\n{"tokens": ["x"]}\n{broken\n', encoding="utf-8")
    output = tmp_path / "out.jsonl"
    stats = write_predictions(TextModel(), PredictionInputs.read(str(source)), output=output)
    assert [json.loads(line)["line"] for line in output.read_text().splitlines()] == [1]
    assert stats.skipped == 2 and stats.problems[0].startswith("line 3: not valid JSON")  # parse errors come first
    source.write_text('{"tokens": ["x"]}\n', encoding="utf-8")
    with pytest.raises(MaskctlError, match='all 1 input lines were skipped .*"text", "tokens"'):
        write_predictions(TextModel(), PredictionInputs.read(str(source)), output=tmp_path / "none.jsonl")
    assert not (tmp_path / "none.jsonl").exists()


def test_strict_stops_at_the_first_bad_line(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "ok"}\n{"tokens": ["x"]}\n', encoding="utf-8")
    with pytest.raises(MaskctlError, match="input line 2"):
        list(predict_inputs(TextModel(), PredictionInputs.read(str(source)), strict=True))


def test_all_skipped_names_a_table_files_columns():
    stats = StreamStats(lines=2, skipped=2, problems=["line 2: needs text — fix"])
    with pytest.raises(MaskctlError, match="the file's columns: a, b") as caught:
        refuse_all_skipped(stats, ["a", "b"])
    assert "--text-column" in caught.value.fix
    refuse_all_skipped(StreamStats(lines=2, skipped=1), ["a"])  # some answered: fine
    refuse_all_skipped(StreamStats(), None)  # nothing read: nothing to refuse
