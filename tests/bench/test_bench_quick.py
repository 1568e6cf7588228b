"""Smoke test of the benchmark's pieces (bench/*.py): they run on a tiny model and report sane values.

No timing is asserted (the machine is shared); the benchmark itself is `python bench/run.py`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def _bench(name: str):
    """``bench.<name>`` from this checkout; bench/ is a folder of scripts, not an installed package."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module(f"bench.{name}")


@pytest.fixture(scope="module")
def common():
    return _bench("common")


@pytest.fixture(scope="module")
def speed():
    return _bench("speed")


@pytest.fixture(scope="module")
def apply():
    return _bench("apply")


@pytest.fixture(scope="module")
def bits():
    return _bench("bits")


@pytest.fixture(scope="module")
def report():
    return _bench("report")


@pytest.fixture(scope="module")
def lora():
    return _bench("lora")


def test_step_time_and_inference_pieces(speed, tiny_bert, keyword_task):
    step = speed.bench_step_time(str(tiny_bert), str(keyword_task), batch_size=4, length=16, warmup=1, steps=2)
    assert step["mask"]["n"] == step["finetune"]["n"] == 2
    assert step["ratio"] > 0 and step["ratio_paired"] > 0
    # head="mask": the classifier is masked, not trained, so only the scores train
    assert step["trainable_params"]["mask"] == step["masked_weights"]
    assert step["trainable_params"]["finetune"] > step["masked_weights"]

    infer = speed.bench_inference(str(tiny_bert), str(keyword_task), batch_size=4, length=16, warmup=1, steps=2)
    assert infer["merged_examples_per_s"] > 0 and infer["base_examples_per_s"] > 0


def test_apply_restores_and_bits_match_the_masks(common, apply, bits, report, tiny_bert, keyword_task, tmp_path):
    net, new_keys, _, _ = common.load_model(str(tiny_bert), str(keyword_task))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    path = apply.simulated_bundle(net, new_keys, tmp_path / "sim.bundle")
    applied = apply.bench_apply(net, path, repeats=1)
    assert applied["total_ms"] > 0 and set(applied["by_threads"]) >= {1}
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # restored bit for bit

    measured = bits.bundle_bits(path)
    assert 0.0 < measured["zero_fraction"] < 0.2
    assert 0.0 < measured["entropy_bits"] < 1.0
    assert 0.0 < measured["flip_rate"] < 0.05  # the simulated training flips ~1 % near the threshold
    assert measured["bits_per_weight_file"] > measured["bits_per_weight_payload"] > 0

    results = {
        "mode": "test",
        "machine": common.machine_info(),
        "load_start": None,
        "load_end": None,
        "wall_s": 1.0,
        "section_wall_s": {"apply": 1.0},
        "sections": {"apply": {"minilm": {**applied, "bundle": "simulated"}}, "bits": {"tiny": measured}},
    }
    table = report.markdown(results)
    assert "| 4a |" in table and "| 6 |" in table and "not run" in table


def test_training_memory_child(common, tiny_bert, keyword_task):
    # through `bench/run.py --child`, as the benchmark runs it
    answer = common.run_child(
        "train-memory",
        {
            "method": "mask",
            "model": str(tiny_bert),
            "task": str(keyword_task),
            "batch_size": 4,
            "length": 16,
            "steps": 1,
        },
    )
    assert answer["peak_rss_mib"] >= answer["baseline_rss_mib"] > 0


def test_lora_comparison_times_the_weight_gradient_floor(lora, report, tiny_bert, keyword_task, tmp_path):
    pytest.importorskip("peft")
    out = lora.bench_lora(
        str(tiny_bert),
        str(keyword_task),
        seed=0,
        epochs=1,
        max_train_samples=16,
        max_length=16,
        batch_size=8,
        work=tmp_path,
        pair_steps=2,
    )
    assert 0.0 <= out["lora"]["score"] <= 1.0 and 0.0 <= out["mask"]["score"] <= 1.0
    floor = out["floor"]
    # the floor finetunes exactly the masked matrices: as many values as masking's scores
    assert floor["trainable_params"] == out["mask"]["trainable_params"]
    assert floor["steps"] == 2 and all(v > 0 for v in floor["median_step_s"].values())
    assert "floor (finetune only the masked matrices)" in report._floor_text(floor)


def test_run_py_loads_as_a_script_module():
    """bench/run.py keeps working when loaded from its path (as `python bench/run.py` runs it)."""
    spec = importlib.util.spec_from_file_location("maskctl_bench_run", REPO / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(module.MODES) == {"quick", "default", "tagging", "full"}
    assert set(module.CHILDREN) == {"train-memory", "eval-memory", "serving", "kernel"}
