"""Mask difference s (paper §6.2) on real bundles and on hand-built masks with known flips."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from maskctl.analysis.diff import layer_group, mask_difference
from maskctl.bundle.format import Bundle, MaskReader, load_bundle, save_bundle
from maskctl.errors import BundleError, MaskctlError
from maskctl.masking.layer import initial_scores
from maskctl.masking.model import layer_seed
from tests.conftest import PNG


def training_initial_mask(meta: dict, name: str, shape, seed: int | None = None) -> torch.Tensor:
    """The initial mask as training draws it (MaskedLinear's path, not the bundle generator)."""
    mask = meta["mask"]
    seed = mask["seed"] if seed is None else seed
    scores = initial_scores(tuple(shape), mask["init_sparsity"], mask["threshold"], layer_seed(seed, name))
    return scores > mask["threshold"]


def popcount(a: torch.Tensor, b: torch.Tensor) -> int:
    return int((a ^ b).sum())


def test_mask_reader_decodes_every_layer_like_load_bundle(trained):
    bundle = load_bundle(trained["a"])
    reader = MaskReader(trained["a"])
    assert set(reader.layers) == set(bundle.masks)
    for name, mask in bundle.masks.items():
        assert torch.equal(reader.mask(name), mask)
    with pytest.raises(BundleError, match="no masked layer"):
        reader.mask("bert.nope")


def test_a_bundle_against_itself_differs_by_zero_in_every_layer(trained, tmp_path):
    result = mask_difference([trained["a"], trained["a"]], tmp_path)
    assert result.layers and result.blocks
    assert all(row["s"] == 0.0 and row["diff_bits"] == 0 and row["init_differs"] == 0.0 for row in result.layers)
    assert all(row["s"] == 0.0 for row in result.blocks)
    assert sum(row["changed_bits_a"] for row in result.layers) > 0  # training did change bits
    assert not result.notes


def test_hand_built_flips_give_the_exact_score(trained, tmp_path):
    base = load_bundle(trained["a"])
    meta = base.meta
    names = list(base.masks)
    first, second = names[0], names[1]  # both in the lowest masked block
    assert layer_group(first) == layer_group(second)
    initial = {n: training_initial_mask(meta, n, m.shape) for n, m in base.masks.items()}

    def flipped(flips: dict[str, range]) -> dict[str, torch.Tensor]:
        masks = {n: m.clone() for n, m in initial.items()}
        for name, where in flips.items():
            flat = masks[name].view(-1)
            flat[list(where)] ^= True
        return masks

    one = flipped({first: range(10), second: range(100, 110)})
    two = flipped({first: range(5, 25)})
    paths = []
    for label, masks in (("one", one), ("two", two)):
        paths.append(
            save_bundle(Bundle(masks=masks, head=base.head, meta=copy.deepcopy(meta)), tmp_path / f"{label}.bundle")
        )
    result = mask_difference(paths, tmp_path / "out")
    rows = {row["layer"]: row for row in result.layers}
    # first: |{0..9} xor {5..24}| = 5 + 15 = 20 differing bits; 10 + 20 changed in all.
    assert (rows[first]["diff_bits"], rows[first]["changed_bits_a"], rows[first]["changed_bits_b"]) == (20, 10, 20)
    assert rows[first]["s"] == pytest.approx(20 / 30, abs=0)
    assert rows[second]["s"] == 1.0  # only one of them changed it: all of the change differs
    assert all(rows[n]["s"] == 0.0 and rows[n]["changed_bits_a"] == 0 for n in names[2:])
    group = layer_group(first)[0]
    block = next(row for row in result.blocks if row["group"] == group)
    assert block["s"] == pytest.approx((20 + 10) / (30 + 10), abs=0)  # sums, not a mean of ratios
    assert block["matrices"] == 6 and block["init_differs"] == 0.0
    changes = {(row["bundle"], row["layer"]): row for row in result.changes}
    assert changes[("one", first)]["changed_bits"] == 10
    assert changes[("two", first)]["changed"] == 20 / one[first].numel()
    expected_sparsity = 1.0 - float(two[first].float().mean())
    assert changes[("two", first)]["sparsity"] == pytest.approx(expected_sparsity, abs=1e-12)


def test_different_seeds_count_their_initial_difference(trained, tmp_path):
    a, c = load_bundle(trained["a"]), load_bundle(trained["c"])
    assert a.meta["mask"]["seed"] != c.meta["mask"]["seed"]
    result = mask_difference([trained["a"], trained["c"]], tmp_path)
    for row in result.layers:
        name = row["layer"]
        init_a = training_initial_mask(a.meta, name, a.masks[name].shape)
        init_c = training_initial_mask(c.meta, name, c.masks[name].shape)
        assert row["diff_bits"] == popcount(a.masks[name], c.masks[name])
        assert row["changed_bits_a"] == popcount(a.masks[name], init_a)
        assert row["changed_bits_b"] == popcount(c.masks[name], init_c)
        assert row["init_differs"] == popcount(init_a, init_c) / a.masks[name].numel() > 0
    assert any("different initial masks" in note for note in result.notes)


def test_trained_pairs_with_one_seed_lie_in_the_unit_interval(trained, tmp_path):
    a, b = load_bundle(trained["a"]), load_bundle(trained["b"])
    result = mask_difference([trained["a"], trained["b"]], tmp_path)
    for row in result.layers + result.blocks:
        assert 0.0 <= row["s"] <= 1.0  # triangle inequality, given one initial mask
    for row in result.layers:
        assert row["diff_bits"] == popcount(a.masks[row["layer"]], b.masks[row["layer"]])
    assert any(row["s"] > 0 for row in result.blocks)  # the two runs really learned other masks


def test_three_bundles_give_every_pair_and_the_files(trained, tmp_path):
    result = mask_difference([trained["a"], trained["b"], trained["c"]], tmp_path)
    assert list(dict.fromkeys(row["pair"] for row in result.blocks)) == ["a vs b", "a vs c", "b vs c"]
    groups = [row["group"] for row in result.blocks if row["pair"] == "a vs b"]
    assert groups == ["block 2", "block 3", "pooler", "classifier"]
    for name in ("mask_diff", "mask_diff_layers", "mask_changes"):
        for ext in ("csv", "md", "json"):
            assert (tmp_path / f"{name}.{ext}").stat().st_size > 0
    saved = json.loads((tmp_path / "mask_diff.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(result.blocks))
    assert len(saved["meta"]["bundles"]) == 3
    assert (tmp_path / "mask_diff.png").read_bytes()[:8] == PNG
    assert len({row["bundle"] for row in result.changes}) == 3


def test_classifiers_of_other_label_counts_are_skipped_with_a_note(trained, tmp_path):
    result = mask_difference([trained["a"], trained["binary"]], tmp_path)
    groups = [row["group"] for row in result.blocks]
    assert "classifier" not in groups and "pooler" in groups
    assert any("classifier" in note and "shapes" in note for note in result.notes)
    assert {row["group"] for row in result.changes if row["bundle"] == "binary"} >= {"classifier"}


def test_another_base_model_is_refused_naming_the_bundle(trained):
    with pytest.raises(BundleError) as info:
        mask_difference([trained["a"], trained["b"], trained["other"]])
    assert str(trained["other"]) in info.value.message and "base model" in info.value.message
    assert "\n" not in str(info.value)
    with pytest.raises(MaskctlError, match="at least two"):
        mask_difference([trained["a"]])


def test_layer_groups_cover_the_three_families():
    assert layer_group("bert.encoder.layer.11.output.dense") == ("block 11", (0, 11))
    assert layer_group("roberta.encoder.layer.0.attention.self.query")[0] == "block 0"
    assert layer_group("distilbert.transformer.layer.5.ffn.lin2")[0] == "block 5"
    assert layer_group("bert.pooler.dense")[0] == "pooler"
    assert layer_group("classifier.dense")[0] == "pooler"
    assert layer_group("classifier.out_proj")[0] == "classifier"
    assert layer_group("pre_classifier")[0] == "pooler"
    names = [
        "classifier",
        "bert.encoder.layer.10.output.dense",
        "bert.pooler.dense",
        "bert.encoder.layer.9.output.dense",
    ]
    assert sorted(names, key=lambda n: layer_group(n)[1]) == [names[3], names[1], names[2], names[0]]


def test_a_bundle_without_a_pooler_is_matched_by_its_source(trained, tmp_path):
    """A token classifier has no pooler, so its fingerprint covers other layers (e.g. wnut16 vs bbc-news)."""
    base = load_bundle(trained["b"])
    meta = copy.deepcopy(base.meta)
    meta["base_model"]["fingerprint_layers"].remove("bert.pooler.dense")
    meta["base_model"]["fingerprint"] = "sha256:" + "0" * 64
    masks = {n: m for n, m in base.masks.items() if n != "bert.pooler.dense"}
    tagger = save_bundle(Bundle(masks=masks, head=base.head, meta=meta), tmp_path / "tagger.bundle")
    result = mask_difference([trained["a"], tagger])
    assert "pooler" not in {row["group"] for row in result.blocks}
    assert any("not by its weight fingerprint" in note for note in result.notes)
    assert any("bert.pooler.dense is masked only in a" in note for note in result.notes)
    plain = mask_difference([trained["a"], trained["b"]])
    same = [row for row in plain.layers if row["layer"] != "bert.pooler.dense"]
    assert [row["s"] for row in result.layers] == [row["s"] for row in same]
    meta = copy.deepcopy(meta)
    meta["base_model"]["source"]["location"] = "/elsewhere"
    moved = save_bundle(Bundle(masks=masks, head=base.head, meta=meta), tmp_path / "moved.bundle")
    with pytest.raises(BundleError, match="moved.bundle has another base model"):
        mask_difference([trained["a"], moved])


def test_the_figure_leaves_room_above_its_highest_point():
    """A flat line of s (0.73 to 0.70, the README's pair) is drawn below the top edge, markers whole
    (issue 37, row m): both axes run from 0 to above their highest value."""
    from maskctl.analysis.diff import DiffResult, diff_figure

    blocks = [
        {"pair": "a vs b", "group": f"block {i}", "s": s, "init_differs": False}
        for i, s in enumerate((0.729, 0.719, 0.707, 0.699), start=2)
    ]
    changes = [
        {"bundle": name, "group": f"block {i}", "changed_bits": bits, "weights": 1000}
        for name, bits in (("a", 22), ("b", 54))
        for i in range(2, 6)
    ]
    fig = diff_figure(DiffResult(bundles=[], names=["a", "b"], blocks=blocks, layers=[], changes=changes))
    left, right = fig.axes[:2]
    assert left.get_ylim()[0] == 0 and left.get_ylim()[1] > 0.729 * 1.05
    assert right.get_ylim()[0] == 0 and right.get_ylim()[1] > 0.054 * 1.05
