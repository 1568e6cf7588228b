"""The serving benchmark's inputs and its kernel probe: variants flip as many bits as trained
bundles do (in the same split of removes and adds), and the term probe measures what it says."""

from __future__ import annotations

import numpy as np
import pytest

from bench.kernel import bench_layer
from bench.serving_tasks import ADDED_SHARE, variant_masks
from maskctl.bundle.format import load_bundle
from maskctl.bundle.mask_coding import InitialMasks
from maskctl.masking import kernels
from maskctl.train_settings import TrainArgs
from maskctl.training.trainer import train


def test_variants_flip_the_trained_fraction_against_their_initial_mask(tiny_bert, keyword_task, tmp_path):
    out = tmp_path / "kw.bundle"
    train(TrainArgs(model=str(tiny_bert), task=str(keyword_task), output=str(out), max_steps=1))
    bundle = load_bundle(out)
    initial = InitialMasks.from_settings(bundle.meta["mask"])
    masks = variant_masks(bundle, 0.05, seed=3)
    removes = adds = total = 0
    for name, mask in masks.items():
        if name.startswith("classifier"):
            assert (mask == bundle.masks[name]).all()  # the head's mask is the bundle's
            continue
        reference = initial.mask(initial.scores(name, mask.numel())).reshape(tuple(mask.shape))
        removes += int((reference & ~mask.numpy()).sum())
        adds += int((~reference & mask.numpy()).sum())
        total += mask.numel()
    assert (removes + adds) / total == pytest.approx(0.05, rel=0.1)
    assert adds / (removes + adds) == pytest.approx(ADDED_SHARE, rel=0.15)
    assert not all(np.array_equal(a, b) for a, b in zip(masks.values(), variant_masks(bundle, 0.05, 4).values()))


@pytest.mark.skipif(not kernels.compiled_available(), reason="the kernel was not compiled at install")
def test_the_kernel_probe_reports_useful_rates():
    row = bench_layer(64, 48, 8, 0.035)
    assert row["flips"] > 0 and row["term_gmac_s"] > 0 and row["dense_gmac_s"] > 0
    assert row["term_over_dense"] == pytest.approx(row["term_ms"] / row["dense_ms"])
    assert row["reference_gmac_s"] > 0 and row["scatter_over_dense"] > 0
