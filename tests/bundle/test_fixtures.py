"""Bundles written by earlier maskctl versions keep loading bit for bit (as PEFT keeps regression
fixtures of old adapter files): a format-1 file written by the code before format 2 existed
(commit 996eb98), a format-2 file and a format-3 file (``--also-train bias+layernorm``: float16
deltas of biases and LayerNorms), each with the digests its own writer's reader computed
(expected.json). Never regenerate these files: add new ones for new formats."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from maskctl.bundle.format import load_bundle, read_coded, read_meta
from maskctl.bundle.meta import BundleMeta

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bundles"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_stored_bundles_of_every_format_load_bit_for_bit(name):
    want = EXPECTED[name]
    bundle = load_bundle(FIXTURES / name)
    assert bundle.meta["format_version"] == want["format_version"]
    assert sorted(bundle.masks) == sorted(want["masks"])
    for layer, mask in bundle.masks.items():
        bits = np.packbits(mask.numpy().astype(bool).reshape(-1)).tobytes()
        assert list(mask.shape) == want["masks"][layer]["shape"]
        assert int(mask.sum()) == want["masks"][layer]["kept"]
        assert hashlib.sha256(bits).hexdigest() == want["masks"][layer]["sha256"], layer
    for tensor_name, tensor in bundle.head.items():
        assert list(tensor.shape) == want["head"][tensor_name]["shape"]
        assert round(float(tensor.double().sum()), 6) == pytest.approx(want["head"][tensor_name]["sum"], abs=1e-6)
    assert sorted(bundle.tuned) == sorted(want.get("tuned", {}))
    for tensor_name, tensor in bundle.tuned.items():
        assert tensor.dtype == torch.float16 and list(tensor.shape) == want["tuned"][tensor_name]["shape"]
        assert hashlib.sha256(tensor.numpy().tobytes()).hexdigest() == want["tuned"][tensor_name]["sha256"]
    coded, head = read_coded(FIXTURES / name)  # serving's lazy path decodes the same bits
    assert all(bool((coded.decode(n) == m).all()) for n, m in bundle.masks.items())
    assert sorted(head) == sorted(bundle.head) and list(coded.tuned) == list(bundle.tuned)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_typed_metadata_reads_every_format(name):
    info = BundleMeta.from_dict(read_meta(FIXTURES / name), name)
    assert info.format_version == EXPECTED[name]["format_version"]
    assert info.task_name == EXPECTED[name]["task"] and info.labels == EXPECTED[name]["labels"]
    assert info.base_model.fingerprint.startswith("sha256:") and info.base_model.fingerprint_layers
    assert info.training.max_length == 128 and info.training.word_piece == "last"
    assert info.training.eval_batch_size == 64 and info.mask.seed == 3
    assert "score" in info.dev and info.head_tensors
