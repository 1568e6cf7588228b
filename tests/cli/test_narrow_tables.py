"""Tables a user reads at 80 columns (issue 24, row j), and folders a server's user can read
(row l): nothing cut, counts as counts, normal modes."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console

from maskctl.cli.console import metrics_table
from maskctl.cli.inspect import short_layer_names
from maskctl.io import atomic_dir
from tests.cli.inprocess import run_in_process

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "bundles" / "keywords-format2.bundle"


def test_inspect_fits_80_columns():
    done = run_in_process("inspect", FIXTURE, env={"COLUMNS": "80"})  # as `COLUMNS=80 maskctl inspect` runs
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if "x64" in line or "x128" in line]
    assert len(rows) == 14 and not any("…" in line for line in rows)
    assert any(line.split()[0] == "2.attn.query" for line in rows) and any("xor/bands" in line for line in rows)
    assert all(len(line) <= 80 for line in done.stdout.splitlines())


def test_layer_names_keep_block_and_matrix():
    prefix, names = short_layer_names(
        [
            "roberta.encoder.layer.11.attention.self.query",
            "roberta.encoder.layer.11.output.dense",
            "roberta.pooler.dense",
            "classifier.out_proj",
        ]
    )
    assert prefix == "roberta"
    assert names == ["11.attn.query", "11.output", "pooler", "classifier.out_proj"]


def test_a_tagging_metrics_table_fits_80_columns():
    metrics = {
        "score": 0.51,
        "seqeval_f1": 0.51,
        "seqeval_precision": 0.5,
        "seqeval_recall": 0.52,
        "token_accuracy": 0.93,
        "words": 7082,
        "excluded_words": 0,
        "n": 360,
    }
    console = Console(width=80, record=True)
    console.print(
        metrics_table("wnut16: a-very-long-bundle-name-for-the-title.bundle", {"dev": metrics, "test": metrics})
    )
    text = console.export_text()
    assert "seqeval precision" in text and "token accuracy" in text and "…" not in text
    assert "7,082" in text and "7082.0000" not in text and "360" in text


def test_atomic_folders_get_normal_modes(tmp_path):
    umask = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "model") as tmp:
            (tmp / "weights.bin").write_bytes(b"x")
            os.chmod(tmp / "weights.bin", 0o600)  # as a writer using mkstemp leaves it
    finally:
        os.umask(umask)
    assert (tmp_path / "model").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "model" / "weights.bin").stat().st_mode & 0o777 == 0o644


def test_saving_a_model_folder_prints_no_raw_bar(tiny_bert, tmp_path, capfd):
    from transformers import AutoModel, AutoTokenizer

    from maskctl.models import save_model_folder

    save_model_folder(AutoModel.from_pretrained(tiny_bert), AutoTokenizer.from_pretrained(tiny_bert), tmp_path / "out")
    assert (tmp_path / "out" / "config.json").is_file()
    assert "Writing model shards" not in capfd.readouterr().err
