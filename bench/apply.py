"""Figure 4: how long switching a resident base model to another task takes (read + decode a
bundle, merge it), on MiniLM and on a random BERT-base-shaped model.

Also makes the simulated bundles (initial masks with a few bits flipped near the threshold) used
when no trained bundle is at hand; figure 6 measures their bits per weight too.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import torch

from bench.common import load_model, median


def simulated_bundle(
    net,
    new_keys: list[str],
    path: Path,
    seed: int = 0,
    flip_sd: float = 0.006,
    meta: dict | None = None,
    timings: dict | None = None,
) -> Path:
    """A bundle for ``net`` as training would leave it: initial masks, then scores nudged by
    N(0, flip_sd) so that the weights near the threshold flip (0.8 % for 0.006)."""
    from maskctl.bundle.format import Bundle, save_bundle
    from maskctl.masking.config import MaskConfig
    from maskctl.masking.model import (
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
            for n in threads if i % 2 == 0 else threads[::-1]:
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
    result["by_threads"] = {n: {f"{k}_ms": 1000 * median([r[k] for r in rows[n]]) for k in rows[n][0]} for n in threads}
    result.update(restore_ms=1000 * restore, repeats=repeats, bytes=path.stat().st_size)
    return result


def bench_apply_models(
    model: str | None, task: str, work: Path, repeats: int, bert_base: bool, trained_bundle: Path | None = None
) -> dict[str, Any]:
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
        big_path = simulated_bundle(
            big, ["classifier.weight", "classifier.bias"], work / "apply-bert-base.bundle", timings=timings
        )
        out["bert_base_save_s"] = timings["save_bundle_s"]
        out["bert_base"] = {
            **bench_apply(big, big_path, max(3, repeats // 2)),
            "bundle": "simulated",
            "path": str(big_path),
        }
        del big
    return out
