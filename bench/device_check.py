"""One prepared check for a lent GPU machine (``bench/device_check.sh``; about 5 minutes on one
GPU): what can only be measured there, written to ``bench/results/device-<card>.json``.

1. Mixed batches equal each task's merged model on CUDA, fp32 (probabilities within 1e-5):
   on CUDA a task's term runs through the plain-PyTorch twin of the kernel
   (``maskctl/masking/kernels/reference.py``: its flips decoded per call, index ops on the
   GPU); the compiled kernel is CPU-only.
2. A short bf16 training run (``--precision bf16``): steps/s, and that its bundle loads.
3. Serving throughput on CUDA: mixed (16 tasks per batch) against single-task batches, short
   and long texts.

Without CUDA it says so and exits 0 before loading any model, so it can be tried anywhere.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def main() -> int:
    if not torch.cuda.is_available():
        print("device check: no CUDA device is present here (torch.cuda.is_available() is False): nothing to check")
        return 0
    sys.path.insert(0, str(HERE.parent))
    from bench.serving_tasks import make_bundles, texts
    from maskctl.bundle.format import load_bundle
    from maskctl.serving import MaskedModel
    from maskctl.train_settings import TrainArgs
    from maskctl.training.trainer import train

    card = torch.cuda.get_device_name(0)
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results" / "device-work"
    work.mkdir(parents=True, exist_ok=True)
    out: dict = {"card": card, "torch": torch.__version__, "cuda": torch.version.cuda}

    tick = time.perf_counter()
    trained = train(
        TrainArgs(
            task="bbc-news",
            output=str(work / "bf16.bundle"),
            max_steps=40,
            batch_size=32,
            precision="bf16",
            device="cuda",
            overwrite=True,
        )
    )
    out["bf16_training"] = {
        "steps": 40,
        "wall_s": time.perf_counter() - tick,
        "dev": trained.metrics,
        "loads": bool(load_bundle(work / "bf16.bundle").masks),
    }

    paths = make_bundles(work / "serving", None, 16)
    served = MaskedModel.from_bundles(paths, device="cuda")
    sample = texts(False)[:8]
    worst = 0.0
    for name in served.tasks[:4]:
        mixed = served.predict_many([(n, t) for t in sample for n in (name, served.tasks[-1])])[::2]
        alone = served.predict(name, sample)  # merged mode on the resident base
        worst = max(
            worst,
            *(
                abs(a - b)
                for m, s in zip(mixed, alone)
                for a, b in zip(m.probabilities.values(), s.probabilities.values())
            ),
        )
    out["mixed_equals_merged_fp32"] = {"max_abs_prob_diff": worst, "ok": worst < 1e-5}

    rates = {}
    for length, pool in (("short", texts(False)), ("long", texts(True))):
        batch = [pool[i % len(pool)] for i in range(16)]
        runs = {
            "mixed": lambda b=batch: served.predict_many(
                [(served.tasks[i], t) for i, t in enumerate(b)], batch_size=16
            ),
            "single": lambda b=batch: served.predict(served.tasks[0], b, batch_size=16),
        }
        for name, fn in runs.items():
            fn(), fn()
            torch.cuda.synchronize()
            tick = time.perf_counter()
            for _ in range(20):
                fn()
            torch.cuda.synchronize()
            rates[f"{length}/{name}"] = 16 * 20 / (time.perf_counter() - tick)
    out["serving_texts_per_s"] = rates
    target = HERE / "results" / f"device-{card.replace(' ', '-').lower()}.json"
    target.write_text(json.dumps(out, indent=2, default=str), encoding="utf-8")
    print(json.dumps(out, indent=2, default=str))
    print(f"device check: wrote {target}")
    return 0 if out["mixed_equals_merged_fp32"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
