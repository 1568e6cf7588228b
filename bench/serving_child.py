"""One contender at one point of ``bench/run.py --serving``, in a fresh process
(``run.py --child serving``): what a user's serving process is, in its default settings.

maskctl: ``MaskedModel.from_bundles`` of every task bundle, nothing else set. LoRA: the base with
one PEFT adapter per task (``serving_tasks.lora_model``), mixed batches through
``adapter_names``. Then every task is made hot by mixed batches of ``BATCH`` requests (a server's
batcher caps its batches; one batch of every task would leave behind the heap of a batch no
server runs), texts/s are measured for mixed batches (``BATCH`` requests, each of the next task
in turn) and single-task batches, short and long texts, tokenisation included, in ``BLOCKS``
blocks of ``PER_BLOCK`` batches (the median batch); and the total RSS is read after handing freed
heap back (``malloc_trim``) with every task hot.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import torch

from bench.common import anon_mib, median, rss_mib

BATCH = 16
BLOCKS = 3
PER_BLOCK = 6
LORA_LOAD_SECONDS = 900  # PEFT's add_adapter slows with every adapter: at 1,000 it is given this long


def child_serving(args: dict[str, Any]) -> dict[str, Any]:
    from bench.serving_tasks import texts
    from maskctl.serving.memory import release_freed_memory

    corpus = {"short": texts(False), "long": texts(True)}
    contender = (_lora if args["method"] == "lora" else _maskctl)(args)
    mixed, single = contender.send(None)  # the base and the first task, warmed by a batch
    mixed([0] * BATCH, corpus["short"][:BATCH])
    release_freed_memory()
    base = {"rss_mib": rss_mib(), "anon_mib": anon_mib()}
    tick = time.monotonic()
    loaded, extra = contender.send(None)  # every other task
    load_s = time.monotonic() - tick
    for start in range(0, loaded, BATCH):  # every task hot, in batches as a server runs them
        tasks = list(range(start, min(start + BATCH, loaded)))
        mixed(tasks, corpus["short"][:1] * len(tasks))
    release_freed_memory()
    hot = {"rss_mib": rss_mib(), "anon_mib": anon_mib()}
    rates: dict[str, float] = {}
    for length, pool in corpus.items():
        rng = random.Random(0)
        for mode, run in (("mixed", mixed), ("single", single)):
            times = []
            for block in range(BLOCKS + 1):  # the first block warms up
                for k in range(PER_BLOCK):
                    batch = [rng.choice(pool) for _ in range(BATCH)]
                    tasks = [(block * PER_BLOCK * BATCH + k * BATCH + j) % loaded for j in range(BATCH)]
                    begin = time.perf_counter()
                    run(tasks, batch)
                    if block:
                        times.append(time.perf_counter() - begin)
            rates[f"{mode}/{length}"] = BATCH / median(times)
    release_freed_memory()
    return {
        "method": args["method"],
        "count": args["count"],
        "loaded": loaded,
        "load_s": load_s,
        "base": base,
        "hot": hot,
        "after": {"rss_mib": rss_mib(), "anon_mib": anon_mib()},
        "texts_per_s": rates,
        "threads": torch.get_num_threads(),
        **extra,
    }


def _maskctl(args: dict[str, Any]):
    """A generator: yields (mixed, single) with one task loaded, then (tasks, facts) with all."""
    from maskctl.serving import MaskedModel

    paths = [Path(p) for p in args["paths"][: args["count"]]]
    served = MaskedModel.from_bundles(paths[:1], model=args.get("model"))
    names = served.tasks

    def mixed(tasks: list[int], batch: list[str]) -> None:
        served.predict_many([(names[t], text) for t, text in zip(tasks, batch)], batch_size=len(batch))

    def single(tasks: list[int], batch: list[str]) -> None:
        served.predict(names[0], batch, batch_size=len(batch))

    yield mixed, single
    for path in paths[1:]:
        served.load(path)
    names[:] = served.tasks
    flips = sum(layer.flips[names[-1]].count for layer in served._layers.values() if names[-1] in layer.flips)
    masked = sum(layer.weight.numel() for layer in served._layers.values())
    yield (
        len(names),
        {
            "memory": served.memory(),
            "flip_fraction": flips / masked,
            "bundle_bytes": paths[-1].stat().st_size,
            "load_ms_median": 1000 * median(served.load_seconds[1:]) if len(paths) > 1 else None,
        },
    )


def _lora(args: dict[str, Any]):
    """As ``_maskctl``, for the LoRA peer."""
    from bench.serving_tasks import add_adapters, lora_server
    from maskctl.models import load_tokenizer

    net, source = lora_server(args.get("model"))
    tokenizer = load_tokenizer(source)

    def run(batch: list[str], **kwargs) -> None:
        enc = tokenizer(batch, truncation=True, max_length=128, padding=True, return_tensors="pt")
        with torch.inference_mode():
            net(**enc, **kwargs)

    def mixed(tasks: list[int], batch: list[str]) -> None:
        run(batch, adapter_names=[f"a{t}" for t in tasks])

    def single(tasks: list[int], batch: list[str]) -> None:
        net.set_adapter("a0")
        run(batch)

    yield mixed, single
    loaded = add_adapters(net, args["count"], deadline=time.monotonic() + LORA_LOAD_SECONDS)
    adapter = sum(p.numel() * p.element_size() for n, p in net.named_parameters() if ".a0." in n or n.endswith(".a0"))
    yield loaded, {"adapter_param_bytes": adapter}
