"""``maskctl export`` writes a model card (README.md, library_name: transformers) beside the
weights, and nothing in the exported folder names a path of this machine."""

from __future__ import annotations

import yaml

from maskctl.experiments.export import export_bundle
from maskctl.train_settings import TrainArgs
from maskctl.training.trainer import train


def test_exported_folder_has_a_transformers_model_card(tiny_bert, keyword_task, tmp_path):
    bundle = tmp_path / "kw.bundle"
    train(
        TrainArgs(model=str(tiny_bert), task=str(keyword_task), output=str(bundle), max_steps=2, batch_size=8, lr=1e-2)
    )
    folder = export_bundle(bundle, tmp_path / "hf")
    card = (folder / "README.md").read_text(encoding="utf-8")
    front = yaml.safe_load(card.split("---\n")[1])
    assert front == {
        "library_name": "transformers",
        "tags": ["maskctl", "binary-mask", "sequence-classification"],
        "pipeline_tag": "text-classification",
    }
    assert "Exported from the maskctl bundle `kw.bundle`" in card
    assert "AutoModelForSequenceClassification.from_pretrained" in card
    assert "maskctl train --task keywords.yaml --model bert" in card
    for name in ("README.md", "maskctl_export.json"):
        text = (folder / name).read_text(encoding="utf-8")
        assert str(tmp_path) not in text and str(tiny_bert) not in text and str(keyword_task.parent) not in text
