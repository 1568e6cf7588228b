"""``maskctl analyze diff`` and ``maskctl analyze connect`` as a user runs them (in process)."""

from __future__ import annotations

import json

import pytest

from maskctl.cli import main
from maskctl.train_settings import TrainArgs
from maskctl.training.trainer import train
from tests.conftest import PNG


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_models, keyword_task):
    root = tmp_path_factory.mktemp("analyze-cli")
    common = {"task": str(keyword_task), "batch_size": 16, "max_steps": 2}
    bert = str(tiny_models["bert"])
    train(TrainArgs(model=bert, output=str(root / "a.bundle"), lr=3e-2, **common))
    train(TrainArgs(model=bert, output=str(root / "b.bundle"), lr=1e-2, **common))
    train(TrainArgs(model=str(tiny_models["distilbert"]), output=str(root / "distil.bundle"), **common))
    train(TrainArgs(model=bert, output=str(root / "ft"), method="finetune", lr=1e-3, **common))
    return root


def invoke(*args) -> int:
    try:
        main([str(a) for a in args])
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def one_line_error(capsys, code: int, *fragments: str) -> None:
    captured = capsys.readouterr()
    assert code == 2, captured.out + captured.err
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), captured.err
    assert "Traceback" not in captured.out + captured.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_diff_writes_tables_and_figure(runs, tmp_path, capsys):
    out = tmp_path / "diff"
    assert invoke("analyze", "diff", runs / "a.bundle", runs / "b.bundle", "--out", out) == 0
    printed = capsys.readouterr().out
    assert "mask difference s per block" in printed and f"wrote 10 files to {out}" in printed
    rows = json.loads((out / "mask_diff.json").read_text())["rows"]
    assert [row["group"] for row in rows] == ["block 2", "block 3", "pooler", "classifier"]
    assert all(0.0 <= row["s"] <= 1.0 for row in rows)
    assert (out / "mask_diff.png").read_bytes()[:8] == PNG
    assert (out / "mask_diff_layers.csv").read_text().startswith("pair,a,b,group,layer,")


def test_diff_errors_are_one_line(runs, tmp_path, capsys):
    code = invoke("analyze", "diff", runs / "a.bundle", runs / "distil.bundle", "--out", tmp_path)
    one_line_error(capsys, code, str(runs / "distil.bundle"), "base model")
    one_line_error(capsys, invoke("analyze", "diff", runs / "a.bundle", "--out", tmp_path), "at least two")
    one_line_error(
        capsys,
        invoke("analyze", "diff", runs / "a.bundle", tmp_path / "nope.bundle", "--out", tmp_path),
        "does not exist",
    )
    assert not list(tmp_path.iterdir())  # nothing written on a refusal


def test_connect_writes_tables_and_figure(runs, tmp_path, capsys):
    out = tmp_path / "connect"
    code = invoke(
        "analyze",
        "connect",
        "--mask",
        runs / "a.bundle",
        "--finetuned",
        runs / "ft",
        "--points",
        3,
        "--device",
        "cpu",
        "--out",
        out,
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "pretrained-masked α=0.50:" in printed and f"files to {out}" in printed
    rows = json.loads((out / "connect.json").read_text())["rows"]
    assert len(rows) == 9 and rows[0]["endpoint"] == "finetuned" and rows[2]["endpoint"] == "masked"
    assert (out / "connect.png").read_bytes()[:8] == PNG


def test_connect_errors_are_one_line(runs, tmp_path, capsys):
    code = invoke(
        "analyze", "connect", "--mask", runs / "a.bundle", "--finetuned", tmp_path / "none", "--out", tmp_path
    )
    one_line_error(capsys, code, "does not exist")
    code = invoke(
        "analyze",
        "connect",
        "--mask",
        runs / "distil.bundle",
        "--finetuned",
        runs / "ft",
        "--device",
        "cpu",
        "--out",
        tmp_path,
    )
    one_line_error(capsys, code, "bert model", "distilbert")
    code = invoke(
        "analyze", "connect", "--mask", runs / "a.bundle", "--finetuned", runs / "ft", "--points", 1, "--out", tmp_path
    )
    one_line_error(capsys, code, "--points 1")


def test_tsne_writes_tables_and_figure_and_refuses_one_line(runs, tmp_path, capsys):
    out = tmp_path / "tsne"
    code = invoke(
        "analyze",
        "tsne",
        "--mask",
        runs / "a.bundle",
        "--finetuned",
        runs / "ft",
        "--max-examples",
        20,
        "--device",
        "cpu",
        "--out",
        out,
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "finetuned" in printed and f"files to {out}" in printed
    assert [row["model"] for row in json.loads((out / "tsne.json").read_text())["rows"]] == [
        "pretrained",
        "masked",
        "finetuned",
    ]
    assert (out / "tsne.png").read_bytes()[:8] == PNG
    code = invoke("analyze", "tsne", "--mask", runs / "distil.bundle", "--finetuned", runs / "ft", "--out", tmp_path)
    one_line_error(capsys, code, "bert model")
