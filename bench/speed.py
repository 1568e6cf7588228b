"""Figures 1-3: what masking costs at training and inference time against finetuning.

1. masked / finetune training step time, alternating steps in one process;
2. masked / finetune peak memory of a training process, each in a fresh child process
   (``child_train_memory``, run through ``run.py --child train-memory``);
3. merged-mask / base inference throughput, alternating batches in one process.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from typing import Any

import torch

from bench.common import (
    alternate,
    build_trainee,
    fixed_batch,
    load_model,
    median,
    pair_ratio,
    peak_rss_mib,
    rss_mib,
    run_child,
    summarise,
    train_step,
)

# ----------------------------------------------------------------------------- 1. step time


def bench_step_time(
    model: str | None = None,
    task: str = "bbc-news",
    batch_size: int = 32,
    length: int = 128,
    warmup: int = 2,
    steps: int = 7,
) -> dict[str, Any]:
    batch = fixed_batch(model, task, batch_size, length)
    masked, mask_opt = build_trainee("mask", model, task)
    tuned, tune_opt = build_trainee("finetune", model, task)
    samples = alternate(
        {"mask": lambda: train_step(masked, mask_opt, batch), "finetune": lambda: train_step(tuned, tune_opt, batch)},
        warmup,
        steps,
    )
    m, f = summarise(samples["mask"]), summarise(samples["finetune"])
    saved = saved_for_backward(masked, batch)
    trainable_mask = sum(p.numel() for p in masked.parameters() if p.requires_grad)
    trainable_ft = sum(p.numel() for p in tuned.parameters() if p.requires_grad)
    return {
        "batch": [batch_size, length],
        "warmup": warmup,
        "steps": steps,
        "mask": m,
        "finetune": f,
        "ratio": m["median_total_s"] / f["median_total_s"],
        "ratio_paired": pair_ratio(samples["mask"], samples["finetune"]),
        "ratio_cpu": m["median_cpu_s"] / f["median_cpu_s"],
        "ratio_forward": m["median_forward_s"] / f["median_forward_s"],
        "ratio_backward": m["median_backward_s"] / f["median_backward_s"],
        "trainable_params": {"mask": trainable_mask, "finetune": trainable_ft},
        "masked_weights": _masked_weight_count(masked),
        "saved_for_backward_mib": saved,
        "samples": samples,
    }


def saved_for_backward(net, batch) -> dict[str, float]:
    """MiB that one masked forward keeps for backward: all of it, and the weight-sized float
    tensors among it that are not parameters (the ``W * mask`` products, one per layer)."""
    from maskctl.masking.model import masked_layers

    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    sizes = {layer.base_layer.weight.numel() for layer in masked_layers(net).values()}
    seen: dict[int, tuple[int, bool]] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = (
                storage.nbytes(),
                tensor.dtype == torch.float32 and tensor.numel() in sizes and tensor.dim() == 2,
            )
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = net(**batch).loss
    del loss
    return {
        "total": sum(b for b, _ in seen.values()) / 2**20,
        "masked_weight_products": sum(b for b, w in seen.values() if w) / 2**20,
        "products": sum(1 for _, w in seen.values() if w),
    }


def _masked_weight_count(net) -> int:
    from maskctl.masking.model import masked_layers

    return sum(layer.base_layer.weight.numel() for layer in masked_layers(net).values())


# ----------------------------------------------------------------------------- 2. training memory


def child_train_memory(method: str, model: str | None, task: str, batch_size: int, length: int, steps: int) -> dict:
    """In a fresh process: peak RSS of building the trainee and running ``steps`` steps."""
    baseline = rss_mib()  # interpreter + torch + transformers imported
    batch = fixed_batch(model, task, batch_size, length)
    net, optimizer = build_trainee(method, model, task)
    loaded = rss_mib()
    for _ in range(steps):
        train_step(net, optimizer, batch)
    return {
        "method": method,
        "peak_rss_mib": peak_rss_mib(),
        "baseline_rss_mib": baseline,
        "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "after_load_rss_mib": loaded,
        "end_rss_mib": rss_mib(),
        "steps": steps,
    }


def bench_train_memory(
    model: str | None = None, task: str = "bbc-news", batch_size: int = 32, length: int = 128, steps: int = 3
) -> dict[str, Any]:
    payload = {"model": model, "task": task, "batch_size": batch_size, "length": length, "steps": steps}
    mask = run_child("train-memory", {**payload, "method": "mask"})
    tune = run_child("train-memory", {**payload, "method": "finetune"})
    return {
        "mask": mask,
        "finetune": tune,
        "ratio": mask["peak_rss_mib"] / tune["peak_rss_mib"],
        "ratio_above_imports": (mask["peak_rss_mib"] - mask["baseline_rss_mib"])
        / (tune["peak_rss_mib"] - tune["baseline_rss_mib"]),
    }


# ----------------------------------------------------------------------------- 3. inference


def bench_inference(
    model: str | None = None,
    task: str = "bbc-news",
    batch_size: int = 32,
    length: int = 128,
    warmup: int = 2,
    steps: int = 10,
) -> dict[str, Any]:
    from maskctl.masking.config import MaskConfig
    from maskctl.masking.model import merge_masks, wrap_model

    batch = {k: v for k, v in fixed_batch(model, task, batch_size, length).items() if k != "labels"}
    base, *_ = load_model(model, task)
    merged, *_ = load_model(model, task)
    wrap_model(merged, MaskConfig())
    merge_masks(merged)
    base.eval(), merged.eval()

    def forward(net) -> Callable[[], dict[str, float]]:
        def run() -> dict[str, float]:
            cpu0, t0 = time.process_time(), time.perf_counter()
            with torch.inference_mode():
                net(**batch)
            return {"total": time.perf_counter() - t0, "cpu": time.process_time() - cpu0}

        return run

    samples = alternate({"merged": forward(merged), "base": forward(base)}, warmup, steps)
    tm, tb = median([s["total"] for s in samples["merged"]]), median([s["total"] for s in samples["base"]])
    return {
        "batch": [batch_size, length],
        "steps": steps,
        "merged_examples_per_s": batch_size / tm,
        "base_examples_per_s": batch_size / tb,
        "ratio": tb / tm,
        "ratio_paired": 1.0 / pair_ratio(samples["merged"], samples["base"]),
        "ratio_cpu": median([s["cpu"] for s in samples["base"]]) / median([s["cpu"] for s in samples["merged"]]),
        "samples": samples,
    }
