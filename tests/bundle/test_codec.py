"""Format 2 mask coding: bit-exact round trips, xor against the regenerated initial mask,
format 1 still readable, damaged payloads refused, and sizes measured against the entropy."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from maskctl.bundle import format as bundle_format
from maskctl.bundle import mask_coding
from maskctl.bundle.format import Bundle, load_bundle, read_meta, save_bundle
from maskctl.bundle.mask_coding import InitialMasks, MaskCodingError, decode_mask, encode_mask
from maskctl.bundle.stats import binary_entropy, mask_stats
from maskctl.errors import BundleError
from maskctl.masking.layer import initial_scores
from maskctl.masking.model import layer_seed
from tests.cli.inprocess import run_in_process

SETTINGS = {"threshold": 0.01, "init_sparsity": 0.05, "seed": 3, "head": "mask", "blocks": None, "block_ids": [0]}


def _random_mask(shape, zeros: float, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen) >= zeros


def _initial_mask(name: str, shape, settings=SETTINGS) -> torch.Tensor:
    """The training code's own initial mask (MaskedLinear.binary_mask at step 0)."""
    scores = initial_scores(
        tuple(shape), settings["init_sparsity"], settings["threshold"], layer_seed(settings["seed"], name)
    )
    return scores > settings["threshold"]


def _trained_like(name: str, shape, flip_rate: float, seed: int = 0, settings=SETTINGS) -> torch.Tensor:
    """An initial mask with a few bits flipped, as training does."""
    mask = _initial_mask(name, shape, settings).clone()
    gen = torch.Generator().manual_seed(seed)
    flips = torch.rand(shape, generator=gen) < flip_rate
    return mask ^ flips


def _trained_near_threshold(name: str, shape, seed: int = 0) -> torch.Tensor:
    """Flips where training makes them: among weights whose initial score is near the threshold."""
    scores = initial_scores(
        tuple(shape), SETTINGS["init_sparsity"], SETTINGS["threshold"], layer_seed(SETTINGS["seed"], name)
    )
    near = (scores - SETTINGS["threshold"]).abs() < 0.004
    gen = torch.Generator().manual_seed(seed)
    return (scores > SETTINGS["threshold"]) ^ (near & (torch.rand(shape, generator=gen) < 0.5))


def _bundle(masks: dict[str, torch.Tensor], mask_settings=SETTINGS) -> Bundle:
    meta = {
        "task": {"name": "t", "labels": ["a", "b"]},
        "base_model": {"fingerprint": "sha256:x"},
        "layers": [{"name": n, "final_sparsity": 1.0 - float(m.float().mean())} for n, m in masks.items()],
    }
    if mask_settings is not None:
        meta["mask"] = dict(mask_settings)
    return Bundle(masks=masks, head={"classifier.bias": torch.zeros(2)}, meta=meta)


def _assert_same_masks(loaded: Bundle, masks: dict[str, torch.Tensor]) -> None:
    assert set(loaded.masks) == set(masks)
    for name, mask in masks.items():
        assert loaded.masks[name].dtype == torch.bool
        assert loaded.masks[name].shape == mask.shape
        assert torch.equal(loaded.masks[name], mask.bool()), name


def _codings(path) -> dict[str, dict]:
    return {layer["name"]: layer["coding"] for layer in read_meta(path)["layers"]}


def _rewrite(path, change) -> None:
    """Re-save ``path`` with its tensors and metadata passed through ``change`` (simulated damage)."""
    with safe_open(str(path), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - safe_open is not iterable
        metadata = handle.metadata()
    meta = json.loads(metadata["maskctl"])
    change(tensors, meta)
    save_file(tensors, str(path), metadata={**metadata, "maskctl": json.dumps(meta)})


# --- bit-exact round trips -------------------------------------------------------------------

ODD_MASKS = {
    "random.half": _random_mask((37, 19), 0.5, 1),
    "random.sparse": _random_mask((64, 33), 0.05, 2),
    "random.dense": _random_mask((3, 5, 7), 0.95, 3),
    "ones": torch.ones(17, 17, dtype=torch.bool),
    "zeros": torch.zeros(9, 13, dtype=torch.bool),
    "one.one": torch.ones(1, dtype=torch.bool),
    "one.zero": torch.zeros(1, 1, dtype=torch.bool),
    "long.run": torch.cat([torch.ones(100_000, dtype=torch.bool), torch.zeros(1, dtype=torch.bool)]),
    "empty": torch.ones(0, 4, dtype=torch.bool),
}


@pytest.mark.parametrize("settings", [None, SETTINGS], ids=["no-generator", "generator"])
def test_compressed_bundle_decodes_bit_exactly(tmp_path, settings):
    path = save_bundle(_bundle(dict(ODD_MASKS), settings), tmp_path / "a.bundle")
    loaded = load_bundle(path)
    _assert_same_masks(loaded, ODD_MASKS)
    assert loaded.meta["format_version"] == 2
    for coding in _codings(path).values():
        assert {"scheme", "order", "layout", "codec", "bytes", "crc32", "zeros"} <= set(coding)


@pytest.mark.parametrize("layout", mask_coding.LAYOUTS)
@pytest.mark.parametrize("codec", mask_coding.CODECS)
def test_every_layout_and_codec_decodes_bit_exactly(layout, codec):
    for name, mask in ODD_MASKS.items():
        bits = mask.reshape(-1).numpy()
        payload = mask_coding._compress(codec, mask_coding._LAYOUT_ENCODE[layout](~bits))
        coding = {
            "scheme": "plain",
            "order": "index",
            "layout": layout,
            "codec": codec,
            "crc32": mask_coding._crc(bits),
        }
        assert torch.equal(decode_mask(name, payload, mask.shape, coding, None), mask), (name, layout, codec)


def test_save_never_exceeds_one_bit_per_masked_weight_plus_small_headers(tmp_path):
    masks = {"noise": _random_mask((256, 256), 0.5, 7)}  # incompressible: plain packbits must win
    path = save_bundle(_bundle(masks, None), tmp_path / "a.bundle")
    coding = _codings(path)["noise"]
    assert coding["bytes"] <= 256 * 256 // 8
    _assert_same_masks(load_bundle(path), masks)


# --- xor against the regenerated initial mask --------------------------------------------------


def test_frozen_generator_equals_the_training_generator():
    for seed, tau, p, shape in [
        (0, 0.01, 0.05, (48, 32)),
        (7, 0.3, 0.5, (1000,)),
        (123, 0.0, 0.2, (3, 3, 3)),
        (2**40 + 5, 0.05, 0.01, (257, 3)),
    ]:
        initial = InitialMasks(seed, tau, p)
        for name in ("enc.0.q", "classifier"):
            expected = initial_scores(shape, p, tau, layer_seed(seed, name))
            scores = initial.scores(name, int(np.prod(shape)))
            assert np.array_equal(scores, expected.numpy().reshape(-1))
            assert np.array_equal(initial.mask(scores), (expected > tau).numpy().reshape(-1))


def test_xor_initial_round_trip_is_bit_exact_and_far_smaller(tmp_path):
    shapes = {"enc.0.q": (96, 64), "enc.0.ffn": (128, 96), "pooler": (33, 17), "classifier": (3, 17)}
    masks = {name: _trained_like(name, shape, 0.01, seed=i) for i, (name, shape) in enumerate(shapes.items())}
    masks["untouched"] = _initial_mask("untouched", (40, 40))  # nothing flipped at all
    path = save_bundle(_bundle(masks), tmp_path / "x.bundle")
    plain = save_bundle(_bundle(masks), tmp_path / "p.bundle", xor_initial=False)
    _assert_same_masks(load_bundle(path), masks)
    _assert_same_masks(load_bundle(plain), masks)
    meta = read_meta(path)
    assert meta["mask_coding"]["generator"] == mask_coding.GENERATOR
    assert {k: meta["mask_coding"][k] for k in ("seed", "threshold", "init_sparsity")} == {
        "seed": 3,
        "threshold": 0.01,
        "init_sparsity": 0.05,
    }
    codings = _codings(path)
    assert codings["enc.0.ffn"]["scheme"] == "xor-initial"
    assert codings["untouched"]["scheme"] == "xor-initial" and codings["untouched"]["flips"] == 0
    assert "mask_coding" not in read_meta(plain)
    assert all(c["scheme"] == "plain" for c in _codings(plain).values())
    assert mask_stats(meta).payload_bytes < mask_stats(read_meta(plain)).payload_bytes / 2


def test_score_band_order_round_trips_flips_near_the_threshold():
    initial = InitialMasks(5, 0.01, 0.05)
    scores = initial.scores("layer", 200_000)
    near = np.abs(scores - np.float32(0.01)) < 0.004
    flips = near & (np.random.default_rng(0).random(scores.size) < 0.5)
    mask = initial.mask(scores) ^ flips
    payload, coding = encode_mask("layer", torch.from_numpy(mask), initial)
    assert coding["scheme"] == "xor-initial" and coding["order"] == "score-bands"
    assert torch.equal(decode_mask("layer", payload, (200_000,), coding, initial), torch.from_numpy(mask))
    assert 8 * len(payload) / mask.size < binary_entropy(flips.mean())  # the scores are side information


@pytest.mark.parametrize(
    "settings",
    [
        None,
        {"seed": 1},
        {**SETTINGS, "seed": None},
        {**SETTINGS, "init_sparsity": 0.0},
        {**SETTINGS, "threshold": "0.01"},
    ],
)
def test_plain_coding_when_the_initial_mask_cannot_be_regenerated(tmp_path, settings):
    masks = {"enc.0.q": _trained_like("enc.0.q", (64, 64), 0.01)}
    path = save_bundle(_bundle(masks, settings), tmp_path / "a.bundle")
    assert _codings(path)["enc.0.q"]["scheme"] == "plain"
    assert "mask_coding" not in read_meta(path)
    _assert_same_masks(load_bundle(path), masks)


def test_plain_wins_when_the_mask_is_unrelated_to_its_initial_mask(tmp_path):
    masks = {"head.trained": _random_mask((128, 128), 0.05, 9)}  # e.g. not drawn by this generator
    path = save_bundle(_bundle(masks), tmp_path / "a.bundle")
    assert _codings(path)["head.trained"]["scheme"] == "plain"
    _assert_same_masks(load_bundle(path), masks)


def test_a_generator_that_does_not_reproduce_falls_back_to_plain(tmp_path, monkeypatch):
    """The save-time check: a candidate that does not decode back is never written."""
    masks = {"enc.0.q": _trained_like("enc.0.q", (64, 64), 0.01)}
    real = InitialMasks.scores
    calls = iter(range(10**6))

    def drifting(self, name, count):  # a different draw on every call, like a broken platform
        return real(self, f"{name}#{next(calls)}", count)

    monkeypatch.setattr(InitialMasks, "scores", drifting)
    path = save_bundle(_bundle(masks), tmp_path / "a.bundle")
    assert _codings(path)["enc.0.q"]["scheme"] == "plain"
    monkeypatch.undo()
    _assert_same_masks(load_bundle(path), masks)


def test_a_write_that_does_not_read_back_is_never_renamed_into_place(tmp_path, monkeypatch):
    masks = {"enc.0.q": _random_mask((32, 32), 0.05)}
    path = save_bundle(_bundle(masks), tmp_path / "a.bundle")
    before = path.read_bytes()
    real = bundle_format.save_file

    def damaging(tensors, filename, metadata=None):
        meta = json.loads(metadata["maskctl"])
        meta["layers"][0]["coding"]["crc32"] = "00000000"
        real(tensors, filename, metadata={**metadata, "maskctl": json.dumps(meta)})

    monkeypatch.setattr(bundle_format, "save_file", damaging)
    with pytest.raises(BundleError):
        save_bundle(_bundle({"enc.0.q": _random_mask((32, 32), 0.05, 1)}), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.bundle"]


# --- format 1 stays readable ---------------------------------------------------------------------


def _write_v1(path, masks: dict[str, torch.Tensor]) -> None:
    """The format 1 layout, written by hand: packbits tensors, no coding entries."""
    tensors = {f"mask/{n}": torch.from_numpy(np.packbits(m.numpy().reshape(-1))) for n, m in masks.items()}
    tensors["head/classifier.bias"] = torch.zeros(2)
    meta = {
        "format": "maskctl.bundle",
        "format_version": 1,
        "maskctl_version": "0.1.0",
        "task": {"name": "t", "labels": ["a", "b"]},
        "base_model": {"fingerprint": "sha256:x"},
        "mask": dict(SETTINGS),
        "layers": [{"name": n, "shape": list(m.shape)} for n, m in masks.items()],
    }
    save_file(tensors, str(path), metadata={"format": "maskctl.bundle", "maskctl": json.dumps(meta)})


def test_format_1_files_still_load_bit_exactly_and_resave_as_format_2(tmp_path):
    masks = {k: v for k, v in ODD_MASKS.items() if k != "empty"}
    masks["enc.0.q"] = _trained_like("enc.0.q", (64, 48), 0.02)
    _write_v1(tmp_path / "old.bundle", masks)
    old = load_bundle(tmp_path / "old.bundle")
    _assert_same_masks(old, masks)
    assert old.meta["format_version"] == 1
    stats = mask_stats(old)
    assert stats.bits_per_weight == pytest.approx(
        8 * sum((m.numel() + 7) // 8 for m in masks.values()) / sum(m.numel() for m in masks.values())
    )
    assert all(layer.scheme == "packbits" for layer in stats.layers)
    new = save_bundle(old, tmp_path / "new.bundle")
    _assert_same_masks(load_bundle(new), masks)
    assert read_meta(new)["format_version"] == 2
    assert _codings(new)["enc.0.q"]["scheme"] == "xor-initial"


# --- damage is refused, never a crash, never a wrong mask ------------------------------------------


def _saved(tmp_path):
    masks = {"enc.0.q": _trained_near_threshold("enc.0.q", (96, 64)), "plain": _random_mask((80, 50), 0.05, 4)}
    return save_bundle(_bundle(masks, {**SETTINGS}), tmp_path / "a.bundle"), masks


def _assert_refused(path, *fragments):
    with pytest.raises(BundleError) as info:
        load_bundle(path)
    assert "\n" not in str(info.value) and info.value.fix
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "empty", "extra"])
def test_a_corrupted_compressed_payload_is_refused(tmp_path, damage):
    path, _ = _saved(tmp_path)

    def change(tensors, meta):
        for key in ("mask/enc.0.q", "mask/plain"):
            data = bytearray(tensors[key].numpy().tobytes())
            if damage == "flip":
                data[len(data) // 2] ^= 0x10
            elif damage == "truncate":
                data = data[: len(data) - 3]
            elif damage == "garbage":
                data = bytearray(os.urandom(len(data)))
            elif damage == "empty":
                data = bytearray()
            else:
                data += b"\x00\x01"
            tensors[key] = torch.from_numpy(np.frombuffer(bytes(data), dtype=np.uint8).copy())

    _rewrite(path, change)
    _assert_refused(path, "cannot be decoded")


def test_every_single_byte_change_is_refused_or_harmless(tmp_path):
    path, masks = _saved(tmp_path)
    good = path.read_bytes()
    header = 8 + int.from_bytes(good[:8], "little")  # safetensors: u64 header size, then the header
    rng = np.random.default_rng(0)
    for position in rng.choice(np.arange(header, len(good)), size=60, replace=False):
        data = bytearray(good)
        data[position] ^= 1 << int(rng.integers(8))
        path.write_bytes(bytes(data))
        try:
            loaded = load_bundle(path)
        except BundleError:
            continue
        _assert_same_masks(loaded, masks)  # a change that still loads must be outside the masks


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("codec", "brotli", "unknown mask codec"),
        ("scheme", "magic", "unknown mask scheme"),
        ("crc32", "00000000", "CRC-32"),
        ("window", [1.0, 0.0], "window"),
        ("levels", 0, "window"),
    ],
)
def test_damaged_coding_metadata_is_refused(tmp_path, field, value, fragment):
    path, _ = _saved(tmp_path)
    assert _codings(path)["enc.0.q"]["order"] == "score-bands"

    def change(tensors, meta):
        next(layer for layer in meta["layers"] if layer["name"] == "enc.0.q")["coding"][field] = value

    _rewrite(path, change)
    _assert_refused(path, "enc.0.q", fragment)


def test_another_initial_mask_is_refused_with_the_generator_named(tmp_path):
    path, _ = _saved(tmp_path)
    _rewrite(path, lambda tensors, meta: meta["mask_coding"].update(seed=4))
    with pytest.raises(BundleError, match="enc.0.q cannot be decoded") as info:
        load_bundle(path)
    assert "initial mask" in info.value.fix and "xor_initial=False" in info.value.fix
    _rewrite(path, lambda tensors, meta: meta["mask_coding"].update(generator="mt19937-v9"))
    _assert_refused(path, "unknown initial-mask generator")
    _rewrite(path, lambda tensors, meta: meta.pop("mask_coding"))
    _assert_refused(path, "no initial-mask generator")


def test_decoding_limits_output_to_what_the_mask_can_need():
    big = mask_coding._compress("zstd", bytes(10_000))
    coding = {"scheme": "plain", "order": "index", "layout": "packbits", "codec": "zstd", "crc32": "0"}
    with pytest.raises(MaskCodingError, match="at most"):
        decode_mask("x", big, (8,), coding, None)
    for codec in ("lzma", "zlib"):
        with pytest.raises(MaskCodingError, match="too long"):
            decode_mask("x", mask_coding._compress(codec, bytes(10_000)), (8,), {**coding, "codec": codec}, None)


# --- size against the entropy bound -------------------------------------------------------------


def test_plain_compression_is_within_ten_percent_of_the_entropy_bound(tmp_path):
    masks = {"big": _random_mask((1024, 1152), 0.05, 11)}  # 1.18M weights, 5% zeros
    path = save_bundle(_bundle(masks), tmp_path / "a.bundle", xor_initial=False)
    stats = mask_stats(read_meta(path))
    assert stats.zero_fraction == pytest.approx(0.05, abs=0.002)
    assert stats.entropy == pytest.approx(binary_entropy(0.05), abs=0.01)
    assert stats.bits_per_weight <= 1.1 * stats.entropy  # measured ~1.02 x H(p)
    _assert_same_masks(load_bundle(path), masks)


def test_xor_coding_is_far_below_the_plain_entropy_bound(tmp_path):
    masks = {"big": _trained_like("big", (1024, 1024), 0.005, 12)}
    path = save_bundle(_bundle(masks), tmp_path / "a.bundle")
    stats = mask_stats(read_meta(path))
    assert stats.layers[0].scheme == "xor-initial"
    assert stats.flip_rate == pytest.approx(0.005, abs=0.0005)
    assert stats.bits_per_weight <= 1.1 * stats.flip_entropy
    assert stats.bits_per_weight <= 0.25 * stats.entropy
    _assert_same_masks(load_bundle(path), masks)


def test_mask_stats_reads_metadata_and_bundles_alike(tmp_path):
    masks = {"a": _trained_like("a", (64, 64), 0.01), "b": _random_mask((10, 10), 0.3, 1)}
    path = save_bundle(_bundle(masks), tmp_path / "a.bundle")
    from_meta, from_bundle = mask_stats(read_meta(path)), mask_stats(load_bundle(path))
    assert from_meta.payload_bytes == from_bundle.payload_bytes == sum(c["bytes"] for c in _codings(path).values())
    assert from_meta.weights == 64 * 64 + 100
    zeros = sum(int((~m).sum()) for m in masks.values())
    assert from_meta.zero_fraction == pytest.approx(zeros / from_meta.weights)
    assert binary_entropy(0.0) == binary_entropy(1.0) == 0.0 and binary_entropy(0.5) == 1.0


def test_inspect_shows_bits_per_masked_weight_next_to_the_entropy(tmp_path):
    masks = {"enc.0.q": _trained_like("enc.0.q", (96, 64), 0.02)}
    bundle = _bundle(masks)
    bundle.meta.update(
        base_model={
            "fingerprint": "sha256:" + "0" * 64,
            "model_type": "bert",
            "source": {"spec": "tiny", "kind": "folder", "location": "/x"},
        },
        task={"name": "t", "kind": "sequence-classification", "metric": "accuracy", "labels": ["a", "b"]},
        sparsity={"init": 0.05, "final": 0.05},
    )
    path = save_bundle(bundle, tmp_path / "a.bundle")
    shown = run_in_process("inspect", path)  # `maskctl inspect`, in process (tests/cli/inprocess.py)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "bits per masked weight (whole file)" in out
    assert "bits per masked weight (mask payload)" in out and "entropy bound H(p)" in out
    assert "xor-initial" in out and "H(flip rate)" in out
