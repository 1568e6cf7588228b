"""Bundles: bit-exact round trip, 1 bit per masked weight, clear refusal of bad files."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from maskctl.bundle import format as bundle_format
from maskctl.bundle.format import Bundle, load_bundle, read_meta, save_bundle
from maskctl.bundle.mask_coding import pack_mask, unpack_mask
from maskctl.errors import BundleError

SHAPES = {"enc.0.q": (37, 19), "enc.0.ffn": (64, 33), "pooler": (17, 17), "classifier": (3, 17)}


def _bundle(seed: int = 0) -> Bundle:
    gen = torch.Generator().manual_seed(seed)
    masks = {name: torch.rand(shape, generator=gen) > 0.05 for name, shape in SHAPES.items()}
    head = {"classifier.weight": torch.randn(3, 17, generator=gen), "classifier.bias": torch.zeros(3)}
    meta = {
        "task": {"name": "t", "labels": ["a", "b", "c"]},
        "base_model": {"fingerprint": "sha256:x"},
        "layers": [{"name": n, "final_sparsity": 0.05} for n in SHAPES],
    }
    return Bundle(masks=masks, head=head, meta=meta)


def test_pack_unpack_is_bit_exact_for_odd_sizes():
    for n in (1, 7, 8, 9, 1000, 1001):
        mask = torch.rand(n) > 0.5
        packed = pack_mask(mask)
        assert packed.dtype == torch.uint8 and packed.numel() == (n + 7) // 8
        assert torch.equal(unpack_mask(packed, (n,)), mask)


def test_round_trip_is_bit_exact(tmp_path):
    original = _bundle()
    path = save_bundle(original, tmp_path / "a.bundle")
    loaded = load_bundle(path)
    assert set(loaded.masks) == set(SHAPES)
    for name, mask in original.masks.items():
        assert loaded.masks[name].dtype == torch.bool
        assert torch.equal(loaded.masks[name], mask)
    for name, tensor in original.head.items():
        assert torch.equal(loaded.head[name], tensor)
    assert loaded.labels == ["a", "b", "c"]
    assert loaded.meta["format_version"] == bundle_format.PLAIN_FORMAT  # no tuned tensors
    assert loaded.meta["layers"][0]["final_sparsity"] == 0.05  # extra per-layer facts survive
    assert read_meta(path) == loaded.meta


def test_file_is_at_most_one_bit_per_masked_weight_plus_header_and_head(tmp_path):
    bundle = _bundle()
    path = save_bundle(bundle, tmp_path / "a.bundle")
    mask_bytes = sum((m.numel() + 7) // 8 for m in bundle.masks.values())
    head_bytes = sum(t.numel() * t.element_size() for t in bundle.head.values())
    header = len(json.dumps(bundle.meta)) + 200 * (len(bundle.masks) + len(bundle.head)) + 64
    assert path.stat().st_size <= mask_bytes + head_bytes + header


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nope.bundle")
    with pytest.raises(BundleError, match="directory"):
        load_bundle(tmp_path)


def test_garbage_and_truncated_files_are_refused(tmp_path):
    garbage = tmp_path / "g.bundle"
    garbage.write_bytes(b"this is not a bundle at all")
    with pytest.raises(BundleError, match="not a readable bundle"):
        load_bundle(garbage)
    good = save_bundle(_bundle(), tmp_path / "a.bundle")
    data = good.read_bytes()
    for cut in (len(data) // 2, len(data) - 1, 10):
        truncated = tmp_path / f"t{cut}.bundle"
        truncated.write_bytes(data[:cut])
        with pytest.raises(BundleError):
            load_bundle(truncated)


def test_plain_safetensors_file_is_not_a_bundle(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(BundleError, match="not a maskctl bundle"):
        load_bundle(path)


def test_newer_format_version_asks_for_an_upgrade(tmp_path):
    bundle = _bundle()
    path = save_bundle(bundle, tmp_path / "a.bundle")
    meta = read_meta(path)
    meta["format_version"] = bundle_format.FORMAT_VERSION + 1
    tensors = {"mask/x": torch.zeros(1, dtype=torch.uint8)}
    save_file(tensors, str(path), metadata={"format": bundle_format.FORMAT_NAME, "maskctl": json.dumps(meta)})
    with pytest.raises(BundleError, match="upgrade maskctl"):
        load_bundle(path)


def test_failed_write_keeps_the_existing_bundle(tmp_path, monkeypatch):
    path = save_bundle(_bundle(seed=1), tmp_path / "a.bundle")
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(bundle_format, "save_file", explode)
    with pytest.raises(OSError):
        save_bundle(_bundle(seed=2), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.bundle"]  # no temporary file left
