"""``bench/run.py --serving``: many tasks on one resident MiniLM (maskctl.serving.MaskedModel).

1. Throughput, mixed / single-task, at 1, 4, 16, 64 and 200 loaded tasks, short (~24 tokens)
   and long (~128 tokens) bbc-news texts, batches of 16 requests whose tasks cycle; single-task =
   batches of one task (maskctl's merged path). maskctl's mixed batches run twice: the default
   path with room for every task in the corrections cache (CSR matrices built from the held
   flips, MKL's product: "CSR") and with no cache (``cache_mb=0``: every task from its flips
   through the compiled kernel, ``masking.flips``: "kernel"). PEFT LoRA r=8 on query/value, one
   adapter (and classifier) per task, mixed batches through ``adapter_names``, on the same texts
   and batches. Contenders alternate block by block in one process; tokenisation is inside
   every timing.
2. Single-task throughput against the merged path of 0.1 (``load_masked`` + the kind's encode,
   collate and forward), alternating.
3. Hot memory (``serving_memory``): RSS of 1 to 1,000 tasks, every one hot, against as many LoRA
   adapters, each count in a fresh process; and the same on a BERT-base-sized encoder (16 and
   200 tasks; ``run.py --serving-bert-base`` runs that part alone).

Task bundles come from one real bbc-news bundle (1 short training epoch here) by flipping 2 % of
its mask bits (20 distinct variants, renamed copies beyond that): the switching cost and the
memory depend on how many bits differ, not on how well a mask was trained.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import torch

from bench.common import log, median, save_results

TASK_COUNTS = (1, 4, 16, 64, 200)
BATCH = 16
VARIANTS = 20
FLIP_RATE = 0.02  # of the mask bits, flipped to make each variant (the protocol)


def make_bundles(work: Path, model: str | None, count: int, real: Path | None = None) -> list[Path]:
    """One real bbc-news bundle (or ``real``), then ``count`` task bundles derived from it
    (``FLIP_RATE`` of the bits flipped)."""
    from maskctl.bundle.format import Bundle, load_bundle, save_bundle
    from maskctl.training.trainer import TrainArgs, train

    work.mkdir(parents=True, exist_ok=True)
    if real is None:
        real = work / "real.bundle"
        if not real.exists():
            log("serving: training the real bbc-news bundle (1 epoch over 256 articles) ...")
            train(TrainArgs(model=model, task="bbc-news", output=str(real), epochs=1, max_train_samples=256,
                            overwrite=True, device="cpu"))
    bundle = load_bundle(real)
    variants = work / f"flipped-{FLIP_RATE:g}"  # a work folder of an older rate is not reused
    variants.mkdir(exist_ok=True)
    paths = []
    for i in range(count):
        path = variants / f"task{i:04d}.bundle"
        if not path.exists():
            if i < VARIANTS:
                generator = torch.Generator().manual_seed(i)
                masks = {n: m ^ (torch.rand(m.shape, generator=generator) < FLIP_RATE) for n, m in bundle.masks.items()}
                meta = {**bundle.meta, "task": {**bundle.meta["task"], "name": f"news-{i:04d}"}}
                save_bundle(Bundle(masks=masks, head=bundle.head, meta=meta), path)
            else:
                _renamed_copy(paths[i % VARIANTS], path, f"news-{i:04d}")
        paths.append(path)
    return paths


def _renamed_copy(source: Path, target: Path, name: str) -> None:
    """The same coded masks under another task name (no re-encoding: memory is what is measured)."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(source), framework="pt") as handle:
        metadata = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    meta = json.loads(metadata["maskctl"])  # the bundle's self-description (maskctl.bundle.format)
    meta["task"]["name"] = name
    metadata["maskctl"] = json.dumps(meta)
    save_file(tensors, str(target), metadata=metadata)


def texts(long: bool) -> list[str]:
    from maskctl.tasks.task import get_task

    articles = [ex["text"] for ex in get_task("bbc-news").examples("test")]
    words = 110 if long else 18
    return [" ".join(a.split()[:words]) for a in articles[:64]]


def lora_model(model: str | None, tasks: int, seed: int = 0):
    """MiniLM with ``tasks`` LoRA adapters (r=8, q/v, random B so each adapter really adds)."""
    from peft import get_peft_model

    from bench.baselines import lora_config
    from bench.common import load_model

    base, _, source, task = load_model(model, "bbc-news", seed)
    # no dropout module at inference, as served adapters are measured
    config = lora_config("sequence-classification", lora_dropout=0.0, init_lora_weights=False)
    net = get_peft_model(base, config, adapter_name="a0")
    for i in range(1, tasks):
        net.add_adapter(f"a{i}", config)
    return net.eval(), source


def bench_throughput(model: str | None, paths: list[Path], counts=TASK_COUNTS, rounds: int = 3, block: int = 6,
                     kernel: bool = True) -> dict[str, Any]:
    """texts/s of each contender at each task count (see the module docstring, 1)."""
    from maskctl.masking.flips import kernel_available
    from maskctl.models import load_tokenizer
    from maskctl.serving import MaskedModel

    out: dict[str, Any] = {}
    corpus = {"short": texts(False), "long": texts(True)}
    for count in [c for c in counts if c <= len(paths)]:
        # the default path with room for every task: CSR matrices (built from the flips with numba)
        served = MaskedModel.from_bundles(paths[:count], model=model, device="cpu", cache_mb=100_000)
        served_kernel = None
        if kernel and kernel_available():  # no cache: every task from its flips through the kernel
            served_kernel = MaskedModel.from_bundles(paths[:count], model=model, device="cpu", cache_mb=0)
        names = served.tasks
        try:
            lora, source = lora_model(model, count)
            tokenizer = load_tokenizer(source)
        except Exception as exc:  # noqa: BLE001 - without peft the reason is the result
            lora, lora_error = None, f"{type(exc).__name__}: {exc}"
        for length, pool in corpus.items():
            rng = random.Random(count)

            def batch_texts() -> list[str]:
                return [rng.choice(pool) for _ in range(BATCH)]

            def run_mixed(k: int, model_=served) -> None:
                model_.predict_many([(names[(k * BATCH + j) % count], t) for j, t in enumerate(batch_texts())],
                                    batch_size=BATCH)

            def run_single(k: int) -> None:
                served.predict(names[0], batch_texts(), batch_size=BATCH)

            def run_lora(k: int, mixed: bool) -> None:
                enc = tokenizer(batch_texts(), truncation=True, max_length=128, padding=True, return_tensors="pt")
                with torch.inference_mode():
                    if mixed:
                        lora(**enc, adapter_names=[f"a{(k * BATCH + j) % count}" for j in range(BATCH)])
                    else:
                        lora.set_adapter("a0")
                        lora(**enc)

            contenders = {"mixed": run_mixed, "single": run_single}
            if served_kernel is not None:
                contenders["mixed_kernel"] = lambda k: run_mixed(k, served_kernel)
            if lora is not None:
                contenders["lora_mixed"] = lambda k: run_lora(k, True)
                contenders["lora_single"] = lambda k: run_lora(k, False)
            samples: dict[str, list[float]] = {k: [] for k in contenders}
            for name, fn in contenders.items():  # warm-up
                fn(0), fn(1)
            for r in range(rounds):
                order = list(contenders) if r % 2 == 0 else list(contenders)[::-1]
                for name in order:
                    for k in range(block):
                        tick = time.perf_counter()
                        contenders[name](r * block + k)
                        if not (name == "single" and k < 2):  # the first two switch to merged mode
                            samples[name].append(time.perf_counter() - tick)
            rate = {name: BATCH / median(times) for name, times in samples.items() if times}
            row = {"texts_per_s": rate, "mixed_over_single": rate["mixed"] / rate["single"]}
            if served_kernel is not None:
                row["kernel_over_csr"] = rate["mixed_kernel"] / rate["mixed"]
                if lora is not None:
                    row["kernel_over_lora_mixed"] = rate["mixed_kernel"] / rate["lora_mixed"]
            if lora is not None:
                row["lora_mixed_over_single"] = rate["lora_mixed"] / rate["lora_single"]
                row["mask_mixed_over_lora_mixed"] = rate["mixed"] / rate["lora_mixed"]
            else:
                row["lora_error"] = lora_error
            out[f"{count}/{length}"] = row
            log(f"serving: {count} tasks, {length}: " + ", ".join(f"{k} {v:.1f}/s" for k, v in rate.items()))
        served = served_kernel = lora = None  # free this count's models before the next (the closures above hold them)
    return out


def bench_single_vs_merged(model: str | None, path: Path, rounds: int = 4, block: int = 6) -> dict[str, Any]:
    """Single-task throughput of MaskedModel against 0.1's merged model (encode + forward)."""
    from maskctl.bundle.format import load_bundle
    from maskctl.serving import MaskedModel
    from maskctl.serving.loading import load_masked
    from maskctl.serving.results import example_from_input

    served = MaskedModel.from_bundles([path], model=model, device="cpu")
    merged = load_masked(load_bundle(path), model=model)
    task, tokenizer = merged.task, merged.tokenizer
    out = {}
    for length, pool in {"short": texts(False), "long": texts(True)}.items():
        rng = random.Random(0)

        def old() -> None:
            examples = [example_from_input(task, t) for t in (rng.choice(pool) for _ in range(BATCH))]
            features = task.kind.encode(task.card, tokenizer, examples, 128, {"word_piece": "last"})
            batch = task.kind.collate(tokenizer)(features.items)
            with torch.inference_mode():
                merged.model(**{k: v for k, v in batch.items() if k != "labels"})

        def new() -> None:
            served.predict(task.name, [rng.choice(pool) for _ in range(BATCH)], batch_size=BATCH)

        times: dict[str, list[float]] = {"new": [], "old": []}
        new(), new(), old()
        for r in range(rounds):
            for name, fn in ((("new", new), ("old", old)) if r % 2 == 0 else (("old", old), ("new", new))):
                for _ in range(block):
                    tick = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - tick)
        out[length] = {"new_over_old": median(times["old"]) / median(times["new"]),
                       "texts_per_s": {k: BATCH / median(v) for k, v in times.items()}}
    return out


def serving_section(model: str | None, work: Path, tasks: int = 1000,
                    parts: tuple[str, ...] = ("minilm", "bert-base")) -> dict[str, Any]:
    """The MiniLM part (throughput at 1-200 tasks, single vs merged, hot memory up to ``tasks``)
    and the BERT-base part (16 and 200 tasks); a failed BERT-base part is recorded."""
    from bench.serving_memory import HOT_COUNTS, bert_base_bundle, bert_base_folder, hot_memory

    result: dict[str, Any] = {"batch": BATCH, "flip_rate": FLIP_RATE}
    if "minilm" in parts:
        paths = make_bundles(work / "serving", model, tasks)
        result["bundle_bytes"] = paths[0].stat().st_size
        result["single_vs_merged"] = bench_single_vs_merged(model, paths[0])
        log(f"serving: single vs merged {result['single_vs_merged']}")
        result["throughput"] = bench_throughput(model, paths)
        result["hot_memory"] = hot_memory(model, paths, [c for c in HOT_COUNTS if c <= tasks],
                                          kernels=("compiled", "torch"))
    if "bert-base" in parts:
        try:
            folder = bert_base_folder(work)
            base_paths = make_bundles(work / "serving-bert-base", str(folder), 200, real=bert_base_bundle(work, folder))
            result["bert_base"] = {"bundle_bytes": base_paths[0].stat().st_size,
                                   "hot_memory": hot_memory(str(folder), base_paths, (1, 16, 200)),
                                   "throughput": bench_throughput(str(folder), base_paths, counts=(16, 200), block=4)}
        except Exception as exc:  # noqa: BLE001 - the MiniLM results above are kept; the reason is the result
            result["bert_base_error"] = f"{type(exc).__name__}: {exc}"[:500]
    return result


def _throughput_lines(throughput: dict[str, Any]) -> list[str]:
    """Columns as BENCHMARKS.md shows them: CSR = the default path with room for every task."""
    lines = ["| tasks | texts | single (texts/s) | kernel mixed | CSR mixed | LoRA mixed / single | kernel / single "
             "| CSR / single | kernel / LoRA | CSR / LoRA |", "|---|---|---|---|---|---|---|---|---|---|"]
    for key, row in throughput.items():
        count, length = key.split("/")
        r = row["texts_per_s"]
        kernel = r.get("mixed_kernel")
        lora = r.get("lora_mixed")
        cells = [count, length, f"{r['single']:.1f}", f"{kernel:.1f}" if kernel else "", f"{r['mixed']:.1f}",
                 f"{lora:.1f} / {r['lora_single']:.1f}" if lora else str(row.get("lora_error", ""))[:80],
                 f"{kernel / r['single']:.2f}" if kernel else "", f"{r['mixed'] / r['single']:.2f}",
                 f"{kernel / lora:.2f}" if kernel and lora else "", f"**{r['mixed'] / lora:.2f}**" if lora else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_serving(results: dict[str, Any], out: Path) -> Path:
    """``results-<mode>.json`` and the tables of ``results-<mode>.md`` (mode ``serving``, or
    ``serving-bert-base`` for the BERT-base part alone)."""
    from bench.serving_memory import hot_memory_lines

    mode = results["mode"]
    s = results["sections"][mode]
    lines = [f"{save_results(results, out, mode)} Batches of {s['batch']} requests; task variants flip "
             f"{s['flip_rate']:.0%} of a real bundle's mask bits.", ""]
    if "throughput" in s:
        lines += [f"MiniLM (bundle {s['bundle_bytes']:,} bytes):", ""] + _throughput_lines(s["throughput"])
        lines += ["", "Single-task throughput against the merged model of 0.1 (encode + forward):", ""]
        for length, row in s["single_vs_merged"].items():
            lines.append(f"- {length}: {row['texts_per_s']['new']:.1f} vs {row['texts_per_s']['old']:.1f} texts/s "
                         f"= **{row['new_over_old']:.3f}**")
        hot = s["hot_memory"]
        lines += [""] + hot_memory_lines(hot, "Hot memory, MiniLM (each count in a fresh process; every task hot):")
        csr = {c: r["maskctl-torch"] for c, r in hot.items() if "maskctl-torch" in r and int(c) > 1}
        if csr:
            lines += ["", "The plain-PyTorch path (coded masks + CSR corrections, all cached): " + ", ".join(
                f"{c} tasks {(r['rss_hot_mib'] - r['rss_base_mib']):.0f} MiB" for c, r in csr.items()) + "."]
        top = hot[max(hot, key=int)].get("maskctl-compiled")
        if top and top.get("load_ms_median") is not None:
            lines += ["", f"Load one task into the running model: median {top['load_ms_median']:.0f} ms; measured "
                          f"flips against the initial mask: {top['flip_fraction']:.2%} of the masked weights."]
    if "bert_base_error" in s:
        lines += ["", f"BERT-base rows: not measured ({s['bert_base_error'][:200]})."]
    if "bert_base" in s:
        b = s["bert_base"]
        lines += ["", f"BERT-base size (random weights, bundle {b['bundle_bytes']:,} bytes):", ""]
        lines += _throughput_lines(b["throughput"])
        lines += [""] + hot_memory_lines(b["hot_memory"], "Hot memory, BERT-base:")
    path = out / f"results-{mode}.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
