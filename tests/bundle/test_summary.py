"""``summarize_bundle``: what ``maskctl inspect`` reports, as data, from the stored format-1 and
format-2 fixtures (no model is loaded), and the stored JSON still readable when a coding entry
is damaged."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from maskctl.bundle.format import read_meta
from maskctl.bundle.stats import binary_entropy
from maskctl.bundle.summary import BundleSummary, summarize_bundle
from maskctl.errors import BundleError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "bundles"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_summary_counts_the_file_against_its_masked_weights(name):
    summary = summarize_bundle(str(FIXTURES / name))
    path = FIXTURES / name
    assert summary.path == path and summary.meta == read_meta(path)
    assert summary.file_bytes == path.stat().st_size
    weights = sum(math.prod(spec["shape"]) for spec in EXPECTED[name]["masks"].values())
    assert summary.info.masked_weights == weights
    assert summary.file_bits_per_weight == pytest.approx(8 * path.stat().st_size / weights)
    assert summary.title == f"{EXPECTED[name]['task']} on {summary.info.base_model.spec}"
    assert [layer.name for layer in summary.layers] == [layer.name for layer in summary.info.layers]


def test_a_format1_bundle_is_packbits_at_one_bit_with_no_flips():
    summary = summarize_bundle(FIXTURES / "keywords-format1.bundle")
    assert summary.xor_layers == 0 and not summary.score_bands
    for layer in summary.layers:
        assert layer.coding == () and layer.scheme == "packbits" and layer.flip_entropy is None
        assert layer.bits_per_weight == pytest.approx(8 * ((math.prod(layer.shape) + 7) // 8) / math.prod(layer.shape))
        assert layer.entropy == pytest.approx(binary_entropy(layer.final_sparsity))


def test_a_format2_bundle_names_its_coding_and_the_flip_entropy_of_xor_layers():
    summary = summarize_bundle(FIXTURES / "keywords-format2.bundle")
    xor = [layer for layer in summary.layers if layer.scheme == "xor-initial"]
    assert summary.xor_layers == len(xor) > 0
    assert summary.score_bands == any("score-bands" in layer.coding for layer in summary.layers)
    assert all(layer.coding[0] == "xor-initial" and layer.flip_entropy is not None for layer in xor)
    assert all(layer.flip_entropy is None for layer in summary.layers if layer.scheme != "xor-initial")
    assert all(layer.bits_per_weight < 1 for layer in xor)  # coded below packbits' one bit


def test_a_damaged_coding_entry_fails_only_what_reads_it(tmp_path):
    meta = read_meta(FIXTURES / "keywords-format2.bundle")
    meta["layers"][0]["coding"]["bytes"] = -1
    summary = BundleSummary(path=tmp_path / "damaged.bundle", meta=meta, file_bytes=1)
    assert summary.info.task_name == "keywords"  # the typed record and the raw JSON still read
    with pytest.raises(BundleError, match="malformed coding entry"):
        _ = summary.layers
