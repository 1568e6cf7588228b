"""Your own CSV in one command, as a new user runs it: train with no YAML, evaluate a file,
predict rows of a CSV / JSON lines under the task's own column names, a sentence pair."""

from __future__ import annotations

import csv
import json

from tests.cli.test_cli import assert_one_line_error, run
from tests.conftest import make_sentences


def write(path, rows, header=("review", "stars")) -> None:
    with path.open("w", newline="", encoding="utf-8-sig") as handle:  # with a byte-order mark, as Excel writes
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def test_train_eval_predict_own_csv_files(tiny_bert, tmp_path):
    write(tmp_path / "reviews-train.csv", make_sentences(120, 1))
    write(tmp_path / "reviews-test.csv", make_sentences(20, 3))
    out = tmp_path / "reviews.bundle"
    run(
        "train",
        "--model",
        tiny_bert,
        "--train-file",
        "reviews-train.csv",
        "--test-file",
        "reviews-test.csv",
        "--text-column",
        "review",
        "--label-column",
        "stars",
        "--max-steps",
        "2",
        "--output",
        out,
        cwd=tmp_path,
    )
    meta = json.loads(run("inspect", out, "--json").stdout)
    assert meta["task"]["name"] == "reviews" and meta["task"]["labels"] == ["food", "neg", "pos", "sport"]
    assert meta["task"]["source"]["files"] == {"train": "reviews-train.csv", "test": "reviews-test.csv"}
    assert str(tmp_path) not in json.dumps(meta["task"])

    base = ("--model", tiny_bert)  # a local base is stored by folder name only: point at it
    test = run("eval", out, "--split", "test", *base, cwd=tmp_path).stdout
    scored = run("eval", out, "--file", tmp_path / "reviews-test.csv", *base).stdout
    assert "40" not in test and "20" in test and "reviews-test.csv" in scored
    assert test.split("│")[2].strip() == scored.split("│")[2].strip()  # the same accuracy either way
    dev = run("eval", out, "--split", "validation", *base, cwd=tmp_path).stdout  # the Hub's name for dev
    assert "matches the dev score recorded at training time" in dev

    rows = [
        json.loads(line)
        for line in run("predict", out, "--input", tmp_path / "reviews-test.csv", *base).stdout.splitlines()
    ]
    assert len(rows) == 20 and rows[0]["line"] == 2  # the header is not predicted
    assert rows[0]["predictions"]["reviews"]["label"] in meta["task"]["labels"]
    lines = tmp_path / "in.jsonl"
    lines.write_text('{"review": "good film"}\n', encoding="utf-8")  # the card's own column name
    assert len(run("predict", out, "--input", lines, *base).stdout.splitlines()) == 1
    pair = json.loads(run("predict", out, "--text", "a", "--text-pair", "b", *base).stdout)
    assert pair["input"] == {"text": "a", "text_pair": "b"}

    write(tmp_path / "other.csv", make_sentences(20, 3), header=("body", "rating"))  # other column names
    written = tmp_path / "other.jsonl"
    proc = run("predict", out, "--input", tmp_path / "other.csv", "--output", written, *base, check=False)
    assert_one_line_error(proc, "all 20 input lines were skipped", "columns: body, rating", "--text-column")
    assert not written.exists()  # no empty output left behind
    named = run("predict", out, "--input", tmp_path / "other.csv", "--text-column", "body", *base).stdout
    assert [json.loads(line)["input"]["text"] for line in named.splitlines()] == [r[0] for r in make_sentences(20, 3)]
    assert_one_line_error(
        run("predict", out, "--input", tmp_path / "other.csv", "--text-column", "review", *base, check=False),
        "no column 'review'",
        "body, rating",
    )
    scored = run(
        "eval", out, "--file", tmp_path / "other.csv", "--text-column", "body", "--label-column", "rating", *base
    ).stdout
    assert scored.split("│")[2].strip() == test.split("│")[2].strip()  # the same rows, other names


def test_own_data_errors_are_one_line_and_keep_existing_output(tiny_bert, tmp_path):
    write(tmp_path / "train.csv", make_sentences(40, 1))
    write(tmp_path / "dev.csv", [["good film", "great"]])
    out = tmp_path / "kept.bundle"
    out.write_bytes(b"old")
    base = ("train", "--model", tiny_bert, "--output", out, "--overwrite")
    assert_one_line_error(
        run(*base, "--train-file", tmp_path / "train.csv", check=False),
        "no column 'text'",
        "review, stars",
        "--text-column",
    )
    assert_one_line_error(
        run(
            *base,
            "--train-file",
            tmp_path / "train.csv",
            "--text-column",
            "review",
            "--validation-file",
            tmp_path / "dev.csv",
            "--label-column",
            "stars",
            check=False,
        ),
        "dev.csv:2: label 'great'",
        "train file",
    )
    assert_one_line_error(run(*base, "--text-column", "review", check=False), "needs --train-file")
    assert_one_line_error(run(*base, "--train-file", tmp_path / "none.csv", check=False), "does not exist")
    assert out.read_bytes() == b"old"
