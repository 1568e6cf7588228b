#!/usr/bin/env python
"""maskctl benchmarks: masking against finetuning (and PEFT LoRA) on the packaged MiniLM.

    .venv/bin/python bench/run.py [--quick] [--quality-full] [--out bench/results]

writes ``<out>/results-<mode>.json`` and ``<out>/results-<mode>.md`` (mode: quick, default or
full). What is measured (bench/README.md has the details):

1. masked / finetune training step time (batch 32 x 128 tokens, real bbc-news articles),
   median of alternating steps after warm-up, in one process;
2. masked / finetune peak RSS of a training process, each in a fresh subprocess;
3. merged-mask / base inference throughput, alternating batches in one process;
4. time to apply one bundle to a resident base model (read + decode + merge), MiniLM and a
   random BERT-base-shaped model;
5. peak RSS of a 4-bundle ensemble / a 1-bundle eval, each in a fresh subprocess;
6. bundle bits per masked weight against the binary entropy H(p) of the mask;
7. masking vs finetuning quality on bbc-news and wnut16, 3 seeds (maskctl's trainer);
8. the alternative users would pick: PEFT LoRA (r=8 on query/value, trained classifier).

Timings are noisy on a shared machine: every ratio is measured side by side in one process,
alternating the two contenders step by step (and which goes first), and the load average
is recorded with the results. Nothing here changes maskctl; the library is only called.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(REPO))

GOALS = {
    "step_time_ratio": ("<=", 1.05),
    "train_peak_rss_ratio": ("<=", 1.00),
    "inference_throughput_ratio": (">=", 0.98),
    "apply_ms_minilm": ("<=", 100.0),
    "ensemble_peak_rss_ratio": ("<=", 1.25),
}

# Settings per mode. "default" is sized for under 15 minutes on a 2-core CPU (885 s measured; bbc-news at
# 64 tokens so that one full epoch fits; wnut16 one short epoch, which is a pipeline check only:
# entity F1 stays 0 until several epochs); "full" uses the task cards' own epochs at 128 tokens.
MODES: dict[str, dict[str, Any]] = {
    "quick": {"warmup": 1, "steps": 5, "infer_steps": 10, "mem_steps": 2, "apply_repeats": 5,
              "bert_base": False, "quality": None, "lora": None},
    "default": {"warmup": 2, "steps": 7, "infer_steps": 10, "mem_steps": 3, "apply_repeats": 7, "bert_base": True,
                "quality": {"bbc-news": {"epochs": 1, "max_train_samples": None, "max_length": 64},
                            "wnut16": {"epochs": 1, "max_train_samples": 512, "max_length": 128}},
                "seeds": (0, 1, 2),
                "lora": {"task": "bbc-news", "epochs": 1, "max_train_samples": None, "max_length": 64}},
    # wnut16 needs several epochs before entity F1 leaves 0 (shared/paper probe): 5 epochs over all
    # 1,675 training tweets, masking, finetuning and LoRA, 3 seeds. Runs ~20 minutes on its own.
    "tagging": {"only": {"quality", "lora"}, "bert_base": False,
                "quality": {"wnut16": {"epochs": 5, "max_train_samples": None, "max_length": 64}},
                "seeds": (0, 1, 2),
                "lora": {"task": "wnut16", "epochs": 5, "max_train_samples": None, "max_length": 64}},
    "full": {"warmup": 2, "steps": 10, "infer_steps": 12, "mem_steps": 3, "apply_repeats": 9, "bert_base": True,
             "quality": {"bbc-news": {"epochs": None, "max_train_samples": None, "max_length": 128},
                         "wnut16": {"epochs": None, "max_train_samples": None, "max_length": 128}},
             "seeds": (0, 1, 2),
             "lora": {"task": "bbc-news", "epochs": None, "max_train_samples": None, "max_length": 128}},
}


# ----------------------------------------------------------------------------- helpers

def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB: ``VmHWM``, the high-water mark of its
    address space. ``getrusage``'s ``ru_maxrss`` is not used for the figures: on Linux it keeps
    the larger of this and the parent's RSS at fork time across ``exec``, so a child started by
    a parent holding two models would report the parent's size."""
    value = _proc_status("VmHWM")
    return value if not math.isnan(value) else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _proc_status(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def rss_mib() -> float:
    return _proc_status("VmRSS")


def loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def mean_sd(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return float(statistics.fmean(values)), float(statistics.stdev(values)) if len(values) > 1 else 0.0


def binary_entropy(p: float) -> float:
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def _slug(task: str) -> str:
    """A file-name-safe name for a task name or a card path."""
    return Path(task).stem if task.endswith((".yaml", ".yml")) else task.replace("/", "_")


def dir_bytes(path: Path) -> tuple[int, int]:
    """(total bytes, file count) of a file or a folder tree."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size, 1
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {"nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                            "python": platform.python_version(), "platform": platform.platform(),
                            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_gib"] = round(int(line.split()[1]) / 1024 ** 2, 1)
    except OSError:
        pass
    for name in ("transformers", "numpy", "peft", "accelerate"):
        try:
            info[name] = __import__(name).__version__
        except Exception as exc:  # noqa: BLE001 - recorded, not fatal
            info[name] = f"unavailable ({type(exc).__name__})"
    import maskctl

    info["maskctl"] = maskctl.__version__
    info["cuda"] = torch.cuda.is_available()
    return info


# ----------------------------------------------------------------------------- models and data

def _task(task: str):
    from maskctl.tasks.task import get_task

    return get_task(task)


def load_model(model: str | None, task: str, seed: int = 0):
    """(model, new_keys, source, task) exactly as the trainer loads it: the task head included."""
    from maskctl.models import load_task_model, resolve_model

    source = resolve_model(model)
    t = _task(task)
    torch.manual_seed(seed)
    net, new_keys = load_task_model(source, t.kind.auto_class, t.labels)
    return net, new_keys, source, t


def fixed_batch(model: str | None, task: str, batch_size: int, length: int) -> dict[str, torch.Tensor]:
    """``batch_size`` real training examples of ``task`` at exactly ``length`` tokens.

    Long examples are cut at ``length`` (bbc-news articles all are); shorter ones are padded
    to it, so every step does the same work.
    """
    from transformers import DataCollatorWithPadding

    from maskctl.models import load_tokenizer, resolve_model

    t = _task(task)
    tokenizer = load_tokenizer(resolve_model(model), **t.kind.tokenizer_kwargs)
    features = t.features("train", tokenizer, length, limit=max(batch_size * 4, 64))
    items = sorted(features.items, key=lambda item: -len(item["input_ids"]))[:batch_size]
    while len(items) < batch_size:  # a tiny task: repeat examples
        items = items + items[: batch_size - len(items)]
    collate = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=length, return_tensors="pt")
    return collate(items)


def build_trainee(method: str, model: str | None, task: str, seed: int = 0):
    """(model, optimizer) as ``maskctl train`` builds them for ``method``."""
    from maskctl.masking.model import MaskConfig, wrap_model

    net, *_ = load_model(model, task, seed)
    if method == "mask":
        wrap_model(net, MaskConfig(seed=seed))
        params = [p for p in net.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=1e-3, weight_decay=0.0)
    elif method == "finetune":
        params = list(net.parameters())
        optimizer = torch.optim.AdamW(params, lr=5e-5, weight_decay=0.01)
    else:
        raise ValueError(method)
    net.train()
    return net, optimizer


def train_step(net, optimizer, batch) -> dict[str, float]:
    """One optimisation step; wall seconds of forward, backward, optimizer, and CPU seconds."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    loss = net(**batch).loss
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    t3 = time.perf_counter()
    return {"total": t3 - t0, "forward": t1 - t0, "backward": t2 - t1, "optimizer": t3 - t2,
            "cpu": time.process_time() - cpu0}


def alternate(contenders: dict[str, Callable[[], dict[str, float]]], warmup: int, steps: int) -> dict[str, list[dict]]:
    """Run each contender once per round, swapping the order every round; drop warm-up rounds."""
    names = list(contenders)
    samples: dict[str, list[dict]] = {name: [] for name in names}
    for round_ in range(warmup + steps):
        order = names if round_ % 2 == 0 else names[::-1]
        for name in order:
            result = contenders[name]()
            if round_ >= warmup:
                samples[name].append(result)
    return samples


def summarise(samples: list[dict[str, float]]) -> dict[str, float]:
    keys = samples[0].keys() if samples else []
    return {f"median_{k}_s": median([s[k] for s in samples]) for k in keys} | {
        "min_total_s": min(s["total"] for s in samples) if samples else float("nan"), "n": len(samples)}


def pair_ratio(a: list[dict], b: list[dict], key: str = "total") -> float:
    """Median over rounds of a[i] / b[i]: each pair ran back to back, so it shares the load."""
    return median([x[key] / y[key] for x, y in zip(a, b)])


# ----------------------------------------------------------------------------- 1. step time

def bench_step_time(model: str | None = None, task: str = "bbc-news", batch_size: int = 32, length: int = 128,
                    warmup: int = 2, steps: int = 7) -> dict[str, Any]:
    batch = fixed_batch(model, task, batch_size, length)
    masked, mask_opt = build_trainee("mask", model, task)
    tuned, tune_opt = build_trainee("finetune", model, task)
    samples = alternate({"mask": lambda: train_step(masked, mask_opt, batch),
                         "finetune": lambda: train_step(tuned, tune_opt, batch)}, warmup, steps)
    m, f = summarise(samples["mask"]), summarise(samples["finetune"])
    saved = saved_for_backward(masked, batch)
    trainable_mask = sum(p.numel() for p in masked.parameters() if p.requires_grad)
    trainable_ft = sum(p.numel() for p in tuned.parameters() if p.requires_grad)
    return {
        "batch": [batch_size, length], "warmup": warmup, "steps": steps,
        "mask": m, "finetune": f,
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
            seen[storage.data_ptr()] = (storage.nbytes(), tensor.dtype == torch.float32 and tensor.numel() in sizes
                                        and tensor.dim() == 2)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = net(**batch).loss
    del loss
    return {"total": sum(b for b, _ in seen.values()) / 2 ** 20,
            "masked_weight_products": sum(b for b, w in seen.values() if w) / 2 ** 20,
            "products": sum(1 for _, w in seen.values() if w)}


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
    return {"method": method, "peak_rss_mib": peak_rss_mib(), "baseline_rss_mib": baseline,
            "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "after_load_rss_mib": loaded, "end_rss_mib": rss_mib(), "steps": steps}


def run_child(kind: str, payload: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    """Run ``kind`` in a fresh interpreter (this file, ``--child``) and return its JSON answer."""
    with tempfile.TemporaryDirectory(prefix="maskctl-bench-") as tmp:
        out = Path(tmp) / "answer.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--child-args", json.dumps(payload),
               "--child-out", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=os.environ.copy(), check=False)
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"child {kind} failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
        return json.loads(out.read_text())


def bench_train_memory(model: str | None = None, task: str = "bbc-news", batch_size: int = 32, length: int = 128,
                       steps: int = 3) -> dict[str, Any]:
    payload = {"model": model, "task": task, "batch_size": batch_size, "length": length, "steps": steps}
    mask = run_child("train-memory", {**payload, "method": "mask"})
    tune = run_child("train-memory", {**payload, "method": "finetune"})
    return {"mask": mask, "finetune": tune, "ratio": mask["peak_rss_mib"] / tune["peak_rss_mib"],
            "ratio_above_imports": (mask["peak_rss_mib"] - mask["baseline_rss_mib"])
            / (tune["peak_rss_mib"] - tune["baseline_rss_mib"])}


# ----------------------------------------------------------------------------- 3. inference

def bench_inference(model: str | None = None, task: str = "bbc-news", batch_size: int = 32, length: int = 128,
                    warmup: int = 2, steps: int = 10) -> dict[str, Any]:
    from maskctl.masking.model import MaskConfig, merge_masks, wrap_model

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
    return {"batch": [batch_size, length], "steps": steps,
            "merged_examples_per_s": batch_size / tm, "base_examples_per_s": batch_size / tb,
            "ratio": tb / tm, "ratio_paired": 1.0 / pair_ratio(samples["merged"], samples["base"]),
            "ratio_cpu": median([s["cpu"] for s in samples["base"]]) / median([s["cpu"] for s in samples["merged"]]),
            "samples": samples}


# ----------------------------------------------------------------------------- 4. apply a bundle

def simulated_bundle(net, new_keys: list[str], path: Path, seed: int = 0, flip_sd: float = 0.006,
                     meta: dict | None = None, timings: dict | None = None) -> Path:
    """A bundle for ``net`` as training would leave it: initial masks, then scores nudged by
    N(0, flip_sd) so that the weights near the threshold flip (0.8 % for 0.006)."""
    from maskctl.bundle.format import Bundle, save_bundle
    from maskctl.masking.model import (
        MaskConfig,
        current_masks,
        masked_layers,
        wrap_model,
    )

    config = MaskConfig(seed=seed)
    wrapped = copy.deepcopy(net)
    wrap_model(wrapped, config)
    generator = torch.Generator().manual_seed(1234 + seed)
    with torch.no_grad():
        for layer in masked_layers(wrapped).values():
            layer.scores.add_(torch.randn(layer.scores.shape, generator=generator) * flip_sd)
    masks = current_masks(wrapped)
    del wrapped
    state = net.state_dict()
    head = {key: state[key].detach().clone() for key in new_keys if key in state}
    bundle_meta = {"mask": config.to_dict(), "simulated": {"flip_sd": flip_sd}, **(meta or {})}
    t0 = time.perf_counter()
    saved = save_bundle(Bundle(masks=masks, head=head, meta=bundle_meta), path)
    if timings is not None:
        timings["save_bundle_s"] = time.perf_counter() - t0
    return saved


def bench_apply(net, path: Path, repeats: int = 7, threads: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Median ms to read + decode a bundle (``load_bundle``) and merge it into a resident model
    (``ResidentModel.apply``, which first restores the previous bundle), after one warm-up.

    Runs with torch's default thread count and with 1 thread, alternating: the merge is ~80
    small elementwise ops whose cost, on a loaded machine, is mostly waking the second thread.
    """
    from safetensors import safe_open

    from maskctl.bundle.format import load_bundle
    from maskctl.masking.resident import ResidentModel

    default = torch.get_num_threads()
    threads = threads or tuple(dict.fromkeys((default, 1)))
    resident = ResidentModel(net)
    rows: dict[int, list[dict[str, float]]] = {n: [] for n in threads}
    try:
        for i in range(repeats + 1):
            for n in (threads if i % 2 == 0 else threads[::-1]):
                torch.set_num_threads(n)
                t0 = time.perf_counter()
                with safe_open(str(path), framework="pt") as handle:  # raw read, no decoding: for the split
                    for key in handle.keys():  # noqa: SIM118 - safe_open is not iterable
                        handle.get_tensor(key)
                t1 = time.perf_counter()
                bundle = load_bundle(path)
                t2 = time.perf_counter()
                resident.apply(bundle.masks, bundle.head, key=i)
                t3 = time.perf_counter()
                if i:
                    rows[n].append({"read_raw": t1 - t0, "load_bundle": t2 - t1, "apply": t3 - t2, "total": t3 - t1})
        t0 = time.perf_counter()
        resident.restore()
        restore = time.perf_counter() - t0
    finally:
        torch.set_num_threads(default)
    result: dict[str, Any] = {f"{k}_ms": 1000 * median([r[k] for r in rows[default]]) for k in rows[default][0]}
    result["threads"] = default
    result["by_threads"] = {n: {f"{k}_ms": 1000 * median([r[k] for r in rows[n]]) for k in rows[n][0]}
                            for n in threads}
    result.update(restore_ms=1000 * restore, repeats=repeats, bytes=path.stat().st_size)
    return result


def bench_apply_models(model: str | None, task: str, work: Path, repeats: int, bert_base: bool,
                       trained_bundle: Path | None = None) -> dict[str, Any]:
    from maskctl.bundle.format import read_meta

    out: dict[str, Any] = {}
    net, new_keys, _, _ = load_model(model, task)
    if trained_bundle is not None and trained_bundle.exists():
        path, kind = trained_bundle, "trained"
        net, new_keys, _, _ = load_model(read_meta(path)["base_model"]["source"]["spec"], task)
    else:
        timings: dict[str, float] = {}
        path, kind = simulated_bundle(net, new_keys, work / "apply-minilm.bundle", timings=timings), "simulated"
        out["minilm_save_s"] = timings["save_bundle_s"]
    out["minilm"] = {**bench_apply(net, path, repeats), "bundle": kind, "path": str(path)}
    del net
    if bert_base:
        import transformers

        torch.manual_seed(0)
        config = transformers.BertConfig(num_labels=2)  # bert-base sizes: 12 x 768, 3072 FFN
        big = transformers.BertForSequenceClassification(config).eval()
        timings = {}
        big_path = simulated_bundle(big, ["classifier.weight", "classifier.bias"], work / "apply-bert-base.bundle",
                                    timings=timings)
        out["bert_base_save_s"] = timings["save_bundle_s"]
        out["bert_base"] = {**bench_apply(big, big_path, max(3, repeats // 2)), "bundle": "simulated",
                            "path": str(big_path)}
        del big
    return out


# ----------------------------------------------------------------------------- 5. ensemble memory

def child_eval_memory(paths: list[str], split: str) -> dict:
    baseline = rss_mib()
    t0 = time.perf_counter()
    if len(paths) == 1:
        from maskctl.training.evaluate import evaluate_bundle

        score = evaluate_bundle(paths[0], split=split, device="cpu").metrics["score"]
    else:
        from maskctl.ensemble import run_ensemble

        result = run_ensemble(paths, by="best", split=split, device="cpu")
        score = result.rules[result.chosen]["score"]
    return {"members": len(paths), "peak_rss_mib": peak_rss_mib(), "baseline_rss_mib": baseline,
            "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "seconds": time.perf_counter() - t0, "score": score}


def bench_ensemble_memory(paths: list[Path], split: str = "dev") -> dict[str, Any]:
    one = run_child("eval-memory", {"paths": [str(paths[0])], "split": split})
    many = run_child("eval-memory", {"paths": [str(p) for p in paths], "split": split})
    return {"eval": one, "ensemble": many, "members": len(paths), "split": split,
            "ratio": many["peak_rss_mib"] / one["peak_rss_mib"],
            "ratio_above_imports": (many["peak_rss_mib"] - many["baseline_rss_mib"])
            / (one["peak_rss_mib"] - one["baseline_rss_mib"])}


def variant_bundles(path: Path, count: int, work: Path, flip_rate: float = 0.005) -> list[Path]:
    """``count`` more bundles from one trained bundle, each with a different ``flip_rate`` of
    its mask bits flipped (seed-to-seed differences), same base, task and head."""
    from maskctl.bundle.format import Bundle, load_bundle, save_bundle

    bundle = load_bundle(path)
    out = []
    for k in range(count):
        generator = torch.Generator().manual_seed(100 + k)
        masks = {name: mask ^ (torch.rand(mask.shape, generator=generator) < flip_rate)
                 for name, mask in bundle.masks.items()}
        out.append(save_bundle(Bundle(masks=masks, head=bundle.head, meta=dict(bundle.meta)),
                               work / f"variant-{k}.bundle"))
    return out


# ----------------------------------------------------------------------------- 6. bits per weight

def bundle_bits(path: Path) -> dict[str, Any]:
    """Bits per masked weight of the whole file and of the mask payload, against H(p).

    Computed from the file and ``read_meta`` only (plus the decoded masks for p), so it does
    not depend on the bundle module's own statistics. ``H(flips)`` is the entropy of the bits
    that differ from the regenerable initial mask: the bound for coding against it.
    """
    from safetensors import safe_open

    from maskctl.bundle.format import load_bundle, read_meta
    from maskctl.masking.layer import initial_scores
    from maskctl.masking.model import layer_seed

    path = Path(path)
    meta = read_meta(path)
    shapes = {layer["name"]: layer["shape"] for layer in meta["layers"]}
    weights = sum(math.prod(shape) for shape in shapes.values())
    payload = head_bytes = 0
    with safe_open(str(path), framework="pt") as handle:
        for key in handle.keys():  # noqa: SIM118 - safe_open is not iterable
            piece = handle.get_slice(key)
            size = math.prod(piece.get_shape()) * {"U8": 1, "F32": 4, "F16": 2, "BF16": 2}.get(piece.get_dtype(), 4)
            if key.startswith("mask/"):
                payload += size
            else:
                head_bytes += size
    bundle = load_bundle(path)
    zeros = sum(int((~m).sum()) for m in bundle.masks.values())
    layer_h = sum(m.numel() * binary_entropy(float((~m).sum()) / m.numel()) for m in bundle.masks.values())
    p = zeros / weights
    settings = meta.get("mask") or {}
    flips = None
    if {"seed", "threshold", "init_sparsity"} <= set(settings):
        flips = 0
        for name, mask in bundle.masks.items():
            scores = initial_scores(tuple(mask.shape), settings["init_sparsity"], settings["threshold"],
                                    layer_seed(settings["seed"], name))
            flips += int((mask ^ (scores > settings["threshold"])).sum())
    size = path.stat().st_size
    return {
        "file_bytes": size, "masked_weights": weights, "mask_payload_bytes": payload, "head_bytes": head_bytes,
        "format_version": meta.get("format_version"),
        "bits_per_weight_file": 8 * size / weights, "bits_per_weight_payload": 8 * payload / weights,
        "zero_fraction": p, "entropy_bits": binary_entropy(p), "entropy_per_layer_bits": layer_h / weights,
        "flip_rate": None if flips is None else flips / weights,
        "flip_entropy_bits": None if flips is None else binary_entropy(flips / weights),
        "codings": sorted({str(layer.get("coding", {}).get("scheme", "packbits")) + "/"
                           + str(layer.get("coding", {}).get("codec", "none")) for layer in meta["layers"]}),
    }


# ----------------------------------------------------------------------------- 7. quality

def bench_quality(settings: dict[str, dict], seeds: tuple[int, ...], work: Path,
                  model: str | None = None) -> dict[str, Any]:
    """Mask and finetune each task with maskctl's trainer, same epochs, per seed."""
    from maskctl.training.trainer import TrainArgs, train

    out: dict[str, Any] = {}
    for task, cfg in settings.items():
        runs: dict[str, list[dict]] = {"mask": [], "finetune": []}
        for seed in seeds:
            for method in ("mask", "finetune"):
                target = work / (f"{_slug(task)}-{method}-s{seed}" + (".bundle" if method == "mask" else ""))
                args = TrainArgs(model=model, task=task, method=method, seed=seed, epochs=cfg.get("epochs"),
                                 max_train_samples=cfg.get("max_train_samples"),
                                 max_length=cfg.get("max_length", 128),
                                 output=str(target), overwrite=True, device="cpu")
                log(f"quality: {task} {method} seed {seed} ...")
                result = train(args)
                size, files = dir_bytes(result.output)
                runs[method].append({"seed": seed, "score": result.metrics["score"], "metrics": result.metrics,
                                     "wall_s": result.wall_seconds, "bytes": size, "files": files,
                                     "output": str(result.output),
                                     "epochs": args.with_task_defaults(_task(task)).epochs})
                log(f"quality: {task} {method} seed {seed}: {result.metrics['score']:.4f} "
                    f"in {result.wall_seconds:.0f} s")
        summary = {}
        for method, rows in runs.items():
            mu, sd = mean_sd([r["score"] for r in rows])
            acc_mu, acc_sd = mean_sd([r["metrics"]["accuracy"] for r in rows])
            summary[method] = {"mean": mu, "sd": sd, "accuracy_mean": acc_mu, "accuracy_sd": acc_sd,
                               "wall_s_mean": statistics.fmean(r["wall_s"] for r in rows),
                               "bytes": rows[0]["bytes"], "files": rows[0]["files"]}
        out[task] = {"settings": {"max_length": 128, **cfg, "epochs": runs["mask"][0]["epochs"],
                                  "seeds": list(seeds), "metric": _task(task).card.metric},
                     "runs": runs, "summary": summary}
    return out


# ----------------------------------------------------------------------------- 8. PEFT LoRA

def bench_lora(model: str | None = None, task: str = "bbc-news", seed: int = 0, epochs: int | None = 1,
               max_train_samples: int | None = None, max_length: int = 128, batch_size: int = 32,
               lora_lr: float = 1e-3, r: int = 8, work: Path | None = None, reference: dict | None = None,
               pair_steps: int = 7) -> dict[str, Any]:
    """PEFT LoRA (r on query/value, classifier trained) on the same task, data, epochs and seed as
    masking: dev score, epoch time and bytes on disk per task.

    LoRA trains with AdamW (``lora_lr``, 10 % warm-up, linear decay, like maskctl's finetuning).
    Speed is compared side by side: after LoRA's run, a masked model (built as the trainer
    does) and the LoRA model alternate ``pair_steps`` steps on the same batches. Masking's score
    and bundle size come from ``reference`` (figure 7's seed-``seed`` runs with these very
    settings, ``{"mask": run, "finetune": run}``); without it the masked model is trained here
    step for step beside LoRA instead.
    """
    try:
        import peft
        from peft import LoraConfig, TaskType, get_peft_model
    except Exception as exc:  # noqa: BLE001 - the reason is the result
        return {"error": f"peft is not importable: {type(exc).__name__}: {exc}"}
    from transformers import get_linear_schedule_with_warmup

    from maskctl.bundle.format import Bundle, save_bundle
    from maskctl.masking.model import (
        MaskConfig,
        current_masks,
        masked_layers,
        merge_masks,
        wrap_model,
    )
    from maskctl.models import load_tokenizer
    from maskctl.training.evaluate import evaluate_model, make_loader

    work = Path(work or tempfile.mkdtemp(prefix="maskctl-bench-lora-"))
    t = _task(task)
    epochs = epochs if epochs is not None else int(t.card.defaults.get("epochs", 3))
    lrs = t.card.defaults.get("lr", {})
    mask_lr = float(lrs.get("mask", 1e-3)) if isinstance(lrs, dict) else 1e-3
    base, new_keys, source, _ = load_model(model, task, seed)
    lora = get_peft_model(base, LoraConfig(task_type=TaskType.SEQ_CLS if t.kind.name.startswith("sequence")
                                           else TaskType.TOKEN_CLS, r=r, lora_alpha=2 * r, lora_dropout=0.1,
                                           target_modules=["query", "value"]))
    lora_params = [p for p in lora.parameters() if p.requires_grad]
    lora_opt = torch.optim.AdamW(lora_params, lr=lora_lr, weight_decay=0.01)
    masked, *_ = load_model(model, task, seed)  # same seed: the same initial classifier
    config = MaskConfig(seed=seed)
    masked_names = wrap_model(masked, config)
    mask_params = [p for p in masked.parameters() if p.requires_grad]
    mask_opt = torch.optim.Adam(mask_params, lr=mask_lr, weight_decay=0.0)

    tokenizer = load_tokenizer(source, **t.kind.tokenizer_kwargs)
    train_features = t.features("train", tokenizer, max_length, limit=max_train_samples)
    dev_features = t.features("dev", tokenizer, max_length)
    loader = make_loader(train_features, t.kind.collate(tokenizer), batch_size, shuffle=True, seed=seed)
    total = len(loader) * epochs
    schedule = get_linear_schedule_with_warmup(lora_opt, int(0.1 * total), total)
    co_train = reference is None
    masked.train(), lora.train()
    times: dict[str, list[float]] = {"mask": [], "lora": []}
    for _ in range(epochs):
        for i, batch in enumerate(loader):
            steps = [("lora", lora, lora_opt, schedule)] + ([("mask", masked, mask_opt, None)] if co_train else [])
            for name, net, optimizer, sched in (steps if i % 2 == 0 else steps[::-1]):
                torch.manual_seed(seed * 100_003 + i)  # the same dropout stream for both
                times[name].append(train_step(net, optimizer, batch)["total"])
                if sched is not None:
                    sched.step()
    floor = weight_gradient_floor(model, task, seed, masked_names, masked, lora, next(iter(loader)),
                                  pair_steps)  # before masks are merged below
    lora_score = evaluate_model(lora, t, dev_features, tokenizer, 64, torch.device("cpu"))["score"]
    lora.save_pretrained(str(work / f"lora-{_slug(task)}"))
    lora_bytes, lora_files = dir_bytes(work / f"lora-{_slug(task)}")

    if co_train:
        pairs = {"mask": times["mask"], "lora": times["lora"]}
        masks = current_masks(masked)
        wrapped = masked_layers(masked)
        head = {}
        for key in new_keys:
            module_name, _, param = key.rpartition(".")
            module = wrapped[module_name].base_layer if module_name in wrapped else masked.get_submodule(module_name)
            head[key] = getattr(module, param).detach().clone()
        merge_masks(masked)
        mask_score = evaluate_model(masked, t, dev_features, tokenizer, 64, torch.device("cpu"))["score"]
        bundle_path = save_bundle(Bundle(masks=masks, head=head, meta={"mask": config.to_dict()}),
                                  work / f"lora-compare-{_slug(task)}-mask.bundle")
        mask_info = {"score": mask_score, "bytes": bundle_path.stat().st_size, "files": 1, "source": "trained here"}
        finetune_info = None
    else:  # a few alternating steps on the same batches, after one warm-up round
        batches = iter(loader)
        batch = next(batches)
        samples = alternate({"mask": lambda: train_step(masked, mask_opt, batch),
                             "lora": lambda: train_step(lora, lora_opt, batch)}, 1, pair_steps)
        pairs = {name: [x["total"] for x in rows] for name, rows in samples.items()}
        run = reference["mask"]
        mask_info = {"score": run["score"], "bytes": run["bytes"], "files": run["files"],
                     "source": f"figure 7 (maskctl train), seed {seed}"}
        finetune_info = {k: reference["finetune"][k] for k in ("score", "bytes", "files")} \
            if reference.get("finetune") else None
    step_ratio = median([m / lo for m, lo in zip(pairs["mask"], pairs["lora"])])
    lora_epoch = sum(times["lora"]) / epochs
    return {
        "task": task, "seed": seed, "epochs": epochs, "max_train_samples": max_train_samples, "max_length": max_length,
        "steps_per_epoch": len(loader), "peft": peft.__version__,
        "lora": {"score": lora_score, "epoch_s": lora_epoch, "median_step_s": median(times["lora"]),
                 "bytes": lora_bytes, "files": lora_files, "trainable_params": sum(p.numel() for p in lora_params),
                 "lr": lora_lr, "r": r, "alpha": 2 * r, "target_modules": ["query", "value"]},
        "mask": {**mask_info, "trainable_params": sum(p.numel() for p in mask_params), "lr": mask_lr,
                 "epoch_s_est": lora_epoch * step_ratio},
        "finetune": finetune_info,
        "step_time_ratio_mask_over_lora": step_ratio, "paired_steps": len(pairs["mask"]),
        "floor": floor,
    }


def weight_gradient_floor(model, task, seed, names, masked, lora, batch, steps) -> dict:
    """Time masking and LoRA beside the floor every mask learner pays: the weight-gradient GEMM.

    dL/dS = (dL/dW_hat) * W needs dL/dW_hat = g^T x for every masked matrix, the very matmul
    finetuning does for its weights and LoRA skips for its frozen ones. The floor contender is
    the same model finetuning exactly the masked matrices (Adam, no masks): masking / floor
    measures what masking adds; floor / LoRA what any method that learns one value per weight
    costs over LoRA's low-rank path. Steps run on copies, so the models being compared keep
    their trained state.
    """
    masked, lora = copy.deepcopy(masked), copy.deepcopy(lora)
    mask_opt = torch.optim.Adam([p for p in masked.parameters() if p.requires_grad], lr=1e-3)
    lora_opt = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-3)
    net, *_ = load_model(model, task, seed)
    for p in net.parameters():
        p.requires_grad_(False)
    for name in names:
        net.get_submodule(name).weight.requires_grad_(True)
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-5)
    net.train()
    samples = alternate({"mask": lambda: train_step(masked, mask_opt, batch),
                         "lora": lambda: train_step(lora, lora_opt, batch),
                         "floor": lambda: train_step(net, optimizer, batch)}, 1, steps)
    med = {name: median([x["total"] for x in rows]) for name, rows in samples.items()}
    return {"median_step_s": med, "trainable_params": sum(p.numel() for p in params),
            "mask_over_floor": pair_ratio(samples["mask"], samples["floor"]),
            "floor_over_lora": pair_ratio(samples["floor"], samples["lora"]),
            "mask_over_lora": pair_ratio(samples["mask"], samples["lora"]),
            "backward_mask_over_floor": pair_ratio(samples["mask"], samples["floor"], "backward"),
            "steps": steps}


# ----------------------------------------------------------------------------- tiny task

def write_tiny_task(root: Path, n_train: int = 64, n_dev: int = 32) -> Path:
    """A small 2-class CSV task card (keyword decides the label) for quick runs and BERT-base."""
    import csv
    import random

    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    words = {"pos": ["good", "great", "fine"], "neg": ["bad", "awful", "poor"]}
    filler = ["the", "a", "film", "plot", "actor", "story", "was", "is", "very", "really", "and", "it", "this",
              "that", "show"]
    for split, n in (("train", n_train), ("dev", n_dev), ("test", n_dev)):
        with (root / f"{split}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["sentence", "label"])
            for i in range(n):
                label = ("pos", "neg")[i % 2]
                text = rng.choices(filler, k=rng.randint(4, 10))
                text.insert(rng.randint(0, len(text)), rng.choice(words[label]))
                writer.writerow([" ".join(text), label])
    card = root / "tiny.yaml"
    card.write_text("name: bench-tiny\nkind: sequence-classification\nlabels: [pos, neg]\nmetric: accuracy\n"
                    "fields: {text: sentence}\nsource: {reader: csv, files: {train: train.csv, dev: dev.csv, "
                    "test: test.csv}}\ndefaults: {epochs: 1}\n", encoding="utf-8")
    return card


def tiny_trained_bundle(model: str | None, card: Path, path: Path, seed: int = 0) -> Path:
    from maskctl.training.trainer import TrainArgs, train

    return train(TrainArgs(model=model, task=str(card), output=str(path), max_steps=1, batch_size=16, seed=seed,
                           overwrite=True, device="cpu")).output


# ----------------------------------------------------------------------------- report

def goal_row(key: str, value: float | None) -> tuple[str, str]:
    op, target = GOALS[key]
    if value is None or not math.isfinite(value):
        return f"{op} {target:g}", "n/a"
    met = value <= target if op == "<=" else value >= target
    return f"{op} {target:g}", "yes" if met else "**no**"


def _apply_text(m: dict[str, Any]) -> str:
    text = (f"**{m['total_ms']:.0f} ms** with {m['threads']} threads (load+decode {m['load_bundle_ms']:.0f}, "
            f"of which raw read {m['read_raw_ms']:.0f}; merge {m['apply_ms']:.0f})")
    for n, t in m.get("by_threads", {}).items():
        if int(n) != m["threads"]:
            text += (f"; {n} thread: {t['total_ms']:.0f} ms (load+decode {t['load_bundle_ms']:.0f}, "
                     f"merge {t['apply_ms']:.0f})")
    return text


def _floor_text(f: dict | None) -> str:
    if not f:
        return ""
    return (f"; floor (finetune only the masked matrices) / LoRA {f['floor_over_lora']:.2f}, "
            f"mask / floor {f['mask_over_floor']:.2f}")


def _fmt_mib(x: float) -> str:
    return f"{x:,.0f} MiB"


def markdown(results: dict[str, Any]) -> str:
    r = results
    lines = [f"## maskctl benchmarks ({r['mode']} mode)", "",
             (f"Machine: {r['machine'].get('nproc')} CPU cores ({r['machine'].get('cpu', '?')}), "
             f"{r['machine'].get('ram_gib', '?')} GiB RAM, torch {r['machine']['torch']} "
             f"({r['machine']['torch_threads']} threads), transformers {r['machine'].get('transformers')}, "
             f"peft {r['machine'].get('peft')}. Load average at start / end: {r['load_start']} / {r.get('load_end')}. "
             f"Wall time {r.get('wall_s', 0):.0f} s."), "",
             "| # | figure | measured | goal | met |", "|---|---|---|---|---|"]

    def row(num: str, what: str, measured: str, key: str | None = None, value: float | None = None) -> None:
        goal, met = goal_row(key, value) if key else ("—", "—")
        lines.append(f"| {num} | {what} | {measured} | {goal} | {met} |")

    def err(num: str, what: str, section: str) -> bool:
        s = r["sections"].get(section)
        if s is None:
            row(num, what, "not run")
            return True
        if "skipped" in s:
            row(num, what, f"skipped ({s['skipped']})")
            return True
        if "error" in s:
            row(num, what, f"failed: {s['error'][:160]}")
            return True
        return False

    if not err("1", "masked / finetune training step time", "step_time"):
        s = r["sections"]["step_time"]
        row("1", f"masked / finetune training step time (MiniLM, batch {s['batch'][0]} x {s['batch'][1]}, "
                 f"median of {s['steps']})",
            f"**{s['ratio']:.3f}** ({s['mask']['median_total_s']:.2f} s / {s['finetune']['median_total_s']:.2f} s; "
            f"paired {s['ratio_paired']:.3f}, CPU time {s['ratio_cpu']:.3f})", "step_time_ratio", s["ratio"])
    if not err("2", "masked / finetune training peak RSS", "train_memory"):
        s = r["sections"]["train_memory"]
        row("2", "masked / finetune training peak RSS (fresh process each)",
            f"**{s['ratio']:.3f}** ({_fmt_mib(s['mask']['peak_rss_mib'])} / {_fmt_mib(s['finetune']['peak_rss_mib'])}; "
            f"above imports {s['ratio_above_imports']:.3f})", "train_peak_rss_ratio", s["ratio"])
    if not err("3", "merged-mask / base inference throughput", "inference"):
        s = r["sections"]["inference"]
        row("3", f"merged-mask / base inference throughput (batch {s['batch'][0]} x {s['batch'][1]})",
            f"**{s['ratio']:.3f}** ({s['merged_examples_per_s']:.1f} / {s['base_examples_per_s']:.1f} ex/s; "
            f"paired {s['ratio_paired']:.3f})", "inference_throughput_ratio", s["ratio"])
    if not err("4", "apply one bundle to a resident model", "apply"):
        s = r["sections"]["apply"]
        m = s["minilm"]
        row("4a", f"apply one bundle, MiniLM ({m['bundle']} bundle; load_bundle + ResidentModel.apply)",
            _apply_text(m), "apply_ms_minilm", m["total_ms"])
        if "bert_base" in s:
            b = s["bert_base"]
            row("4b", "apply one bundle, BERT-base shape (random weights, simulated bundle)",
                _apply_text(b) + f"; save_bundle took {s.get('bert_base_save_s', float('nan')):.1f} s")
    if not err("5", "4-bundle ensemble / 1-bundle eval peak RSS", "ensemble_memory"):
        s = r["sections"]["ensemble_memory"]
        row("5", f"{s['members']}-bundle ensemble / 1-bundle eval peak RSS ({s.get('task', '?')}, {s['split']})",
            f"**{s['ratio']:.3f}** ({_fmt_mib(s['ensemble']['peak_rss_mib'])} / {_fmt_mib(s['eval']['peak_rss_mib'])}; "
            f"above imports {s['ratio_above_imports']:.3f})", "ensemble_peak_rss_ratio", s["ratio"])
    if not err("6", "bundle bits per masked weight", "bits"):
        for name, b in r["sections"]["bits"].items():
            flip = ("" if b["flip_entropy_bits"] is None else
                    f"; flips vs initial mask {100 * b['flip_rate']:.2f} %, H = {b['flip_entropy_bits']:.3f}")
            row("6", f"bits per masked weight, {name} ({b['masked_weights']:,} weights, format {b['format_version']})",
                f"**{b['bits_per_weight_file']:.3f}** whole file, {b['bits_per_weight_payload']:.3f} mask payload "
                f"(file {b['file_bytes']:,} B); H(p={b['zero_fraction']:.4f}) = {b['entropy_bits']:.3f}{flip}")
    q = r["sections"].get("quality")
    if q is None or "error" in q or "skipped" in q:
        err("7", "masking vs finetuning quality", "quality")
    else:
        for task, s in q.items():
            st = s["settings"]
            what = (f"quality {task} ({st['metric']}, {st['epochs']} epoch(s), "
                    f"{'all' if st.get('max_train_samples') is None else st['max_train_samples']} train examples, "
                    f"{st['max_length']} tokens, seeds {','.join(map(str, st['seeds']))})")
            m, f = s["summary"]["mask"], s["summary"]["finetune"]
            extra = ""
            if st["metric"] != "accuracy":
                extra = f" (word accuracy {m['accuracy_mean']:.3f} vs {f['accuracy_mean']:.3f})"
            row("7", what, f"mask **{m['mean']:.3f} ± {m['sd']:.3f}** vs finetune **{f['mean']:.3f} ± {f['sd']:.3f}**"
                           f"{extra}; run {m['wall_s_mean']:.0f} s vs {f['wall_s_mean']:.0f} s; per task on disk "
                           f"{m['bytes']:,} B vs {f['bytes']:,} B ({f['files']} files)")
    if not err("8", "PEFT LoRA beside masking", "lora"):
        s = r["sections"]["lora"]
        lo, ma = s["lora"], s["mask"]
        disk = f"on disk LoRA {lo['bytes']:,} B in {lo['files']} files vs mask {ma['bytes']:,} B in {ma['files']}"
        if s.get("finetune"):
            disk += f" vs finetune {s['finetune']['bytes']:,} B in {s['finetune']['files']}"
        row("8", f"LoRA r={lo['r']} q,v + classifier (AdamW lr {lo['lr']:g}) vs mask ({s['task']}, {s['epochs']} "
                 f"epoch(s), {s['steps_per_epoch']} steps/epoch, {s.get('max_length', 128)} tokens, seed {s['seed']})",
            f"{'accuracy' if 'bbc' in s['task'] else 'score'} LoRA **{lo['score']:.3f}** vs mask **{ma['score']:.3f}**; "
            f"LoRA epoch {lo['epoch_s']:.0f} s, mask / LoRA step time {s['step_time_ratio_mask_over_lora']:.2f} "
            f"(paired, {s['paired_steps']} steps){_floor_text(s.get('floor'))}; {disk}")
    lines += ["", "Section wall times: " + ", ".join(f"{k} {v:.0f} s" for k, v in r["section_wall_s"].items()) + "."]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main

def run_all(mode: str, out: Path, model: str | None = None, work: Path | None = None,
            only: set[str] | None = None) -> dict[str, Any]:
    cfg = MODES[mode]
    only = only or cfg.get("only")
    started = time.perf_counter()
    own_work = work is None
    work = Path(work or tempfile.mkdtemp(prefix="maskctl-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"mode": mode, "settings": {k: v for k, v in cfg.items()}, "machine": machine_info(),
                               "load_start": loadavg(), "sections": {}, "section_wall_s": {}}
    log(f"mode {mode}; work files in {work}")

    def section(name: str, fn: Callable[[], Any]) -> Any:
        if only and name not in only:
            return None
        log(f"{name} ...")
        t0 = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - one failing figure must not lose the others
            traceback.print_exc()
            value = {"error": f"{type(exc).__name__}: {exc}"}
        results["section_wall_s"][name] = time.perf_counter() - t0
        results["sections"][name] = value
        log(f"{name} done in {results['section_wall_s'][name]:.0f} s")
        _write(results, out, mode, started)
        return value

    section("step_time", lambda: bench_step_time(model, "bbc-news", 32, 128, cfg["warmup"], cfg["steps"]))
    section("train_memory", lambda: bench_train_memory(model, "bbc-news", 32, 128, cfg["mem_steps"]))
    section("inference", lambda: bench_inference(model, "bbc-news", 32, 128, cfg["warmup"], cfg["infer_steps"]))
    quality = None
    if cfg.get("quality"):
        quality = section("quality", lambda: bench_quality(cfg["quality"], tuple(cfg["seeds"]), work, model))
    else:
        results["sections"]["quality"] = {"skipped": "--quick mode"}
    trained: dict[str, list[Path]] = {}
    if quality and "error" not in quality and "skipped" not in quality:
        trained = {task: [Path(run["output"]) for run in q["runs"]["mask"]] for task, q in quality.items()}
    section("apply", lambda: bench_apply_models(model, "bbc-news", work, cfg["apply_repeats"], cfg["bert_base"],
                                                (trained.get("bbc-news") or [None])[0]))

    def ensemble() -> dict[str, Any]:
        # wnut16's dev split is short tweets: 4 members cost far less than 4 passes over bbc-news.
        task = next((t for t in ("wnut16", "bbc-news") if trained.get(t)), None)
        if task is not None:
            paths = trained[task][:4]
            paths += variant_bundles(paths[0], 4 - len(paths), work)
            what = f"{task}, {len(trained[task][:4])} trained seeds + {4 - len(trained[task][:4])} variant(s)"
        else:
            card = write_tiny_task(work / "tiny-task")
            first = tiny_trained_bundle(model, card, work / "tiny-0.bundle")
            paths = [first] + variant_bundles(first, 3, work)
            what = "tiny csv task, 1 trained bundle + 3 variants"
        return {**bench_ensemble_memory(paths, "dev"), "task": what}

    section("ensemble_memory", ensemble)

    def bits() -> dict[str, Any]:
        out_bits = {}
        for task, paths in trained.items():
            out_bits[f"MiniLM {task} trained seed 0"] = bundle_bits(paths[0])
        apply = results["sections"].get("apply") or {}
        for key, label in (("minilm", "MiniLM"), ("bert_base", "BERT-base")):
            if key in apply and "path" in apply[key] and apply[key]["bundle"] == "simulated":
                out_bits[f"{label} simulated"] = bundle_bits(Path(apply[key]["path"]))
        return out_bits

    section("bits", bits)
    if cfg.get("lora"):
        lc = cfg["lora"]

        def lora() -> dict[str, Any]:
            reference = None
            q = quality.get(lc["task"]) if quality and "error" not in quality and "skipped" not in quality else None
            if (q and q["settings"].get("max_length") == lc.get("max_length", 128)
                    and q["settings"].get("max_train_samples") == lc["max_train_samples"]):
                seed0 = {m: next((r for r in q["runs"][m] if r["seed"] == 0), None) for m in ("mask", "finetune")}
                reference = seed0 if seed0["mask"] else None
            return bench_lora(model, lc["task"], 0, lc["epochs"], lc["max_train_samples"],
                              max_length=lc.get("max_length", 128), work=work, reference=reference)

        section("lora", lora)
    else:
        results["sections"]["lora"] = {"skipped": "--quick mode"}
    results["load_end"] = loadavg()
    results["wall_s"] = time.perf_counter() - started
    _write(results, out, mode, started)
    if own_work:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    log(f"done in {results['wall_s']:.0f} s: {out}/results-{mode}.json and .md")
    return results


def _write(results: dict[str, Any], out: Path, mode: str, started: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results.setdefault("wall_s", time.perf_counter() - started)
    snapshot = {**results, "wall_s": results["wall_s"] if "load_end" in results else time.perf_counter() - started}
    (out / f"results-{mode}.json").write_text(json.dumps(snapshot, indent=2, default=str), encoding="utf-8")
    (out / f"results-{mode}.md").write_text(markdown(snapshot), encoding="utf-8")


CHILDREN = {
    "train-memory": lambda a: child_train_memory(a["method"], a["model"], a["task"], a["batch_size"], a["length"],
                                                 a["steps"]),
    "eval-memory": lambda a: child_eval_memory(a["paths"], a["split"]),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (< 3 min): fewer steps, no quality or LoRA")
    parser.add_argument("--quality-full", action="store_true",
                        help="quality and LoRA with the task defaults (bbc-news 3 epochs, wnut16 15 epochs)")
    parser.add_argument("--tagging", action="store_true",
                        help="figures 7-8 on wnut16 with 5 epochs over all tweets, 3 seeds (~20 min)")
    parser.add_argument("--out", default=str(HERE / "results"), help="folder for results-<mode>.json/.md")
    parser.add_argument("--model", default=None, help="base model (default: the packaged MiniLM)")
    parser.add_argument("--work", default=None, help="keep bundles and finetuned models here (default: a temp dir)")
    parser.add_argument("--only", default=None, help="comma-separated sections, e.g. step_time,inference")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-args", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        answer = CHILDREN[args.child](json.loads(args.child_args))
        Path(args.child_out).write_text(json.dumps(answer), encoding="utf-8")
        return 0
    modes = [name for name, on in (("quick", args.quick), ("full", args.quality_full), ("tagging", args.tagging)) if on]
    if len(modes) > 1:
        parser.error("--quick, --quality-full and --tagging exclude each other")
    mode = modes[0] if modes else "default"
    only = set(args.only.split(",")) if args.only else None
    run_all(mode, Path(args.out), args.model, Path(args.work) if args.work else None, only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
