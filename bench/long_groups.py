#!/usr/bin/env python
"""Where a task's long group of rows is cheaper as its own dense product (flips written into the
weight and undone, "scatter-merge") than as its term beside the shared product: the choice of
``maskctl.masking.served.DENSE_MIN_TOKENS``, measured in the whole model.

    OMP_WAIT_POLICY=PASSIVE python bench/long_groups.py --work DIR   # ~5 min; -> bench/results/long-groups.json

64 MiniLM task variants (``serving_tasks.make_bundles``) loaded as ``maskctl serve`` holds them;
mixed batches of 16 long texts (~128 tokens each) with 1, 2 or 4 texts a task, so groups of
~128, 256 and 512 rows; both ways alternating, 3 rounds, the median of 5 batches each. Why not
``bench/kernel.py``'s per-layer figure: there a layer's weight stays in cache between calls,
while in a model the flips are written into a weight that has left it, and the shared product is
cut into pieces.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.serving_tasks import make_bundles, texts
from maskctl.masking import served
from maskctl.serving import MaskedModel

WAYS = {"scatter-merge": 1, "term": 10**9}  # DENSE_MIN_TOKENS for each way


def measure(model: MaskedModel, per_task: int, batches: int = 5) -> float:
    names, pool, rng = model.tasks, texts(True), random.Random(per_task)
    tasks = 16 // per_task
    times = []
    for k in range(batches + 1):  # the first warms up
        batch = [(names[(k * tasks + j // per_task) % len(names)], rng.choice(pool)) for j in range(16)]
        begin = time.perf_counter()
        model.predict_many(batch, batch_size=16)
        if k:
            times.append(time.perf_counter() - begin)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="task bundles are made (or reused) here")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "long-groups.json")
    args = parser.parse_args(argv)
    model = MaskedModel.from_bundles(make_bundles(args.work / "serving", None, 64))
    rows = []
    for r in range(3):
        for per_task in (1, 2, 4):
            for way in WAYS if r % 2 == 0 else list(WAYS)[::-1]:
                served.DENSE_MIN_TOKENS = WAYS[way]
                rows.append({"round": r, "texts_a_task": per_task, "way": way, "batch_s": measure(model, per_task)})
                print(rows[-1], flush=True)
    args.out.write_text(json.dumps({"rows": rows}, indent=1) + "\n", encoding="utf-8")
    for per_task in (1, 2, 4):
        medians = {
            w: statistics.median(r["batch_s"] for r in rows if r["way"] == w and r["texts_a_task"] == per_task)
            for w in WAYS
        }
        print(
            f"~{128 * per_task} rows a group: term {medians['term']:.3f} s, "
            f"scatter-merge {medians['scatter-merge']:.3f} s a batch"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
