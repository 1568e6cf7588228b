"""Bundles of every kind on one tiny base model, shared by the serving tests."""

from __future__ import annotations

import pytest

from maskctl.train_settings import TrainArgs
from maskctl.training.trainer import train
from tests.tasks.official_fixtures import WRITERS


@pytest.fixture(scope="package")
def three_tasks(tmp_path_factory, tiny_bert, keyword_task):
    """A classification, a tagging and a multiple-choice bundle on the same tiny base model."""
    root = tmp_path_factory.mktemp("serve")
    paths, data = {}, {}
    for name in ("keywords", "conll03", "swag"):
        folder = None
        if name != "keywords":
            folder = root / name
            folder.mkdir()
            WRITERS[name](folder)
        out = root / f"{name}.bundle"
        train(
            TrainArgs(
                model=str(tiny_bert),
                task=str(keyword_task) if name == "keywords" else name,
                data_dir=str(folder) if folder else None,
                output=str(out),
                max_steps=2,
                batch_size=4,
                lr=1e-2,
                init_sparsity=0.2,
            )
        )
        paths[name], data[name] = out, folder
    return paths, data


@pytest.fixture(scope="package")
def other_keywords(tmp_path_factory, tiny_bert, keyword_task):
    """The keyword task again under another name: another seed, every block masked, a trained
    classifier (so its head and its masked layers differ from the first one)."""
    card = keyword_task.parent / "keywords-b.yaml"  # beside the first card: the same data files
    card.write_text(keyword_task.read_text().replace("name: keywords", "name: keywords-b"), encoding="utf-8")
    out = tmp_path_factory.mktemp("serve-b") / "keywords-b.bundle"
    train(
        TrainArgs(
            model=str(tiny_bert),
            task=str(card),
            output=str(out),
            max_steps=3,
            batch_size=8,
            lr=2e-2,
            init_sparsity=0.15,
            seed=7,
            mask_blocks="all",
            head="train",
        )
    )
    return out
