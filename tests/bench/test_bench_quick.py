"""Smoke test of bench/run.py: its pieces run on a tiny model and report sane values.

No timing is asserted (the machine is shared); the benchmark itself is `python bench/run.py`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

RUN = Path(__file__).resolve().parents[2] / "bench" / "run.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("maskctl_bench_run", RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_step_time_and_inference_pieces(bench, tiny_bert, keyword_task):
    step = bench.bench_step_time(str(tiny_bert), str(keyword_task), batch_size=4, length=16, warmup=1, steps=2)
    assert step["mask"]["n"] == step["finetune"]["n"] == 2
    assert step["ratio"] > 0 and step["ratio_paired"] > 0
    # head="mask": the classifier is masked, not trained, so only the scores train
    assert step["trainable_params"]["mask"] == step["masked_weights"]
    assert step["trainable_params"]["finetune"] > step["masked_weights"]

    infer = bench.bench_inference(str(tiny_bert), str(keyword_task), batch_size=4, length=16, warmup=1, steps=2)
    assert infer["merged_examples_per_s"] > 0 and infer["base_examples_per_s"] > 0


def test_apply_restores_and_bits_match_the_masks(bench, tiny_bert, keyword_task, tmp_path):
    net, new_keys, _, _ = bench.load_model(str(tiny_bert), str(keyword_task))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    path = bench.simulated_bundle(net, new_keys, tmp_path / "sim.bundle")
    applied = bench.bench_apply(net, path, repeats=1)
    assert applied["total_ms"] > 0 and set(applied["by_threads"]) >= {1}
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # restored bit for bit

    bits = bench.bundle_bits(path)
    assert 0.0 < bits["zero_fraction"] < 0.2
    assert 0.0 < bits["entropy_bits"] < 1.0
    assert 0.0 < bits["flip_rate"] < 0.05  # the simulated training flips ~1 % near the threshold
    assert bits["bits_per_weight_file"] > bits["bits_per_weight_payload"] > 0

    results = {"mode": "test", "machine": bench.machine_info(), "load_start": None, "load_end": None,
               "wall_s": 1.0, "section_wall_s": {"apply": 1.0},
               "sections": {"apply": {"minilm": {**applied, "bundle": "simulated"}}, "bits": {"tiny": bits}}}
    table = bench.markdown(results)
    assert "| 4a |" in table and "| 6 |" in table and "not run" in table


def test_training_memory_child(bench, tiny_bert, keyword_task):
    answer = bench.run_child("train-memory", {"method": "mask", "model": str(tiny_bert), "task": str(keyword_task),
                                                  "batch_size": 4, "length": 16, "steps": 1})
    assert answer["peak_rss_mib"] >= answer["baseline_rss_mib"] > 0


def test_lora_comparison_times_the_weight_gradient_floor(bench, tiny_bert, keyword_task, tmp_path):
    pytest.importorskip("peft")
    out = bench.bench_lora(str(tiny_bert), str(keyword_task), seed=0, epochs=1, max_train_samples=16,
                           max_length=16, batch_size=8, work=tmp_path, pair_steps=2)
    assert 0.0 <= out["lora"]["score"] <= 1.0 and 0.0 <= out["mask"]["score"] <= 1.0
    floor = out["floor"]
    # the floor finetunes exactly the masked matrices: as many values as masking's scores
    assert floor["trainable_params"] == out["mask"]["trainable_params"]
    assert floor["steps"] == 2 and all(v > 0 for v in floor["median_step_s"].values())
    assert "floor (finetune only the masked matrices)" in bench._floor_text(floor)
