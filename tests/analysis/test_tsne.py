"""[CLS] t-SNE (paper Fig. 4): the vectors are exactly those of each model, the files are valid."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from maskctl.analysis.tsne import cls_vectors, tsne_representations
from maskctl.bundle.format import Bundle, load_bundle, save_bundle
from maskctl.devices import resolve_device
from maskctl.errors import MaskctlError
from maskctl.evaluation import make_loader
from maskctl.models import load_task_model, resolve_model
from maskctl.serving.loading import load_base, load_masked
from tests.conftest import PNG

CPU = resolve_device("cpu")


def test_vectors_are_each_models_cls_and_files_are_written(trained, tmp_path):
    result = tsne_representations(trained["a"], trained["finetuned"], max_examples=40, out_dir=tmp_path, device="cpu")
    assert [row["model"] for row in result.rows] == ["pretrained", "masked", "finetuned"]
    assert all(row["examples"] == 40 and row["dim"] == 64 for row in result.rows)
    assert all(-1.0 <= row["silhouette_cls"] <= 1.0 for row in result.rows)

    masked = load_masked(load_bundle(trained["a"]))
    task, tokenizer = masked.task, masked.tokenizer
    features = task.features("dev", tokenizer, 128, limit=40)
    loader = make_loader(features, task.kind.collate(tokenizer), 64)
    np.testing.assert_array_equal(result.vectors["masked"], cls_vectors(masked.model, loader, CPU))
    base, _, _ = load_base(masked.bundle.info)
    np.testing.assert_array_equal(result.vectors["pretrained"], cls_vectors(base, loader, CPU))
    tuned, _ = load_task_model(resolve_model(str(trained["finetuned"])), task.kind.auto_class, task.labels)
    np.testing.assert_array_equal(result.vectors["finetuned"], cls_vectors(tuned, loader, CPU))
    assert not np.array_equal(result.vectors["masked"], result.vectors["pretrained"])

    points = json.loads((tmp_path / "tsne_points.json").read_text())["rows"]
    assert len(points) == 120 and {p["label"] for p in points} == set(task.labels)
    assert [p["label"] for p in points[:4]] == [task.labels[f["labels"]] for f in features.items[:4]]
    assert (tmp_path / "tsne.png").read_bytes()[:8] == PNG
    assert (tmp_path / "tsne.csv").read_text().startswith("model,examples,dim,silhouette_cls,silhouette_tsne")


def test_without_a_finetuned_model_two_panels(trained):
    result = tsne_representations(trained["a"], max_examples=12, device="cpu")
    assert [row["model"] for row in result.rows] == ["pretrained", "masked"]


def test_other_task_kinds_and_tiny_sets_are_refused(trained, tmp_path):
    bundle = load_bundle(trained["a"])
    meta = copy.deepcopy(bundle.meta)
    meta["task"]["kind"] = "token-tagging"
    tagger = save_bundle(Bundle(masks=bundle.masks, head=bundle.head, meta=meta), tmp_path / "tagger.bundle")
    with pytest.raises(MaskctlError, match="token-tagging task"):
        tsne_representations(tagger)
    with pytest.raises(MaskctlError, match="too few"):
        tsne_representations(trained["a"], max_examples=1)
