#!/usr/bin/env python
"""Record the README's example runs as the JSON its figures are written from
(``bench/readme_figures.py``). Two runs, each a subcommand:

``demo``: ``make demo``'s two commands (blocks ``demo`` and ``bundle-sizes``)::

    /usr/bin/time -v maskctl train --output OUT/bbc-news-minilm.bundle > OUT/train.log 2> OUT/train.time
    maskctl eval OUT/bbc-news-minilm.bundle --split test --output OUT/test.json
    python bench/readme_record.py demo OUT/bbc-news-minilm.bundle --test OUT/test.json \\
        --train-log OUT/train.log --train-time OUT/train.time [--note "..."]  # -> bench/results/readme/demo.json

``ensemble``: "Many tasks, one model"'s four masks and their vote (block ``ensemble``)::

    for S in 0 1 2 3; do maskctl train --epochs 1 --seed $S --output DIR/ensemble/news-s$S.bundle; done
    /usr/bin/time -v maskctl ensemble DIR/ensemble/news-s*.bundle --by best --split test \\
        --output DIR/votes.jsonl > DIR/ensemble.log 2> DIR/ensemble.time
    /usr/bin/time -v maskctl eval DIR/ensemble/news-s0.bundle --split test > DIR/eval-s0.log 2> DIR/eval-s0.time
    python bench/readme_record.py ensemble DIR [--note "..."]                  # -> bench/results/readme/ensemble.json

Everything else comes from the bundles themselves: the dev history and the kept evaluation, the
mask's sparsity and flips, its size, and the size the same masks take in the other codings (zero
runs: the bundle saved again without its initial-mask coding; 1 bit per weight: computed, each
layer's ceil(n / 8) bytes in place of its coded payload). Why records and not the README: a
figure typed into the README drifts from the code (issue 37 found four that had); a record is
the run's own output, and the README's text is generated from it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def peak_rss_mb(time_output: str) -> float | None:
    """``Maximum resident set size (kbytes)`` of GNU time's ``-v`` report, in MB (10^6 bytes)."""
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_output)
    return int(found.group(1)) * 1024 / 1e6 if found else None


def wall_seconds(train_log: str) -> float | None:
    """The ``wrote ... in N s`` line ``maskctl train`` ends with."""
    found = re.search(r"^wrote \S+ in (\d+(?:\.\d+)?) s", train_log, re.MULTILINE)
    return float(found.group(1)) if found else None


def coding_sizes(bundle_path: Path) -> dict[str, Any]:
    """The mask's size in each coding: as written, as zero runs, at 1 bit per weight."""
    from maskctl.bundle.format import load_bundle, save_bundle
    from maskctl.bundle.stats import mask_stats

    bundle = load_bundle(bundle_path)
    written = mask_stats(bundle.meta)
    file_bytes = bundle_path.stat().st_size
    with tempfile.TemporaryDirectory() as tmp:
        plain = save_bundle(bundle, Path(tmp) / "plain.bundle", xor_initial=False)
        plain_stats = mask_stats(load_bundle(plain).meta)
        plain_bytes = plain.stat().st_size
    packbits = sum((layer.weights + 7) // 8 for layer in written.layers)
    return {
        "masked_weights": written.weights,
        "masked_layers": len(written.layers),
        "zero_fraction": written.zero_fraction,
        "entropy_bits": written.entropy,
        "flips": {
            "file_bytes": file_bytes,
            "payload_bytes": written.payload_bytes,
            "bits_per_weight": written.bits_per_weight,
            "flip_rate": written.flip_rate,
            "flip_entropy_bits": written.flip_entropy,
        },
        "zero_runs": {
            "file_bytes": plain_bytes,
            "payload_bytes": plain_stats.payload_bytes,
            "bits_per_weight": plain_stats.bits_per_weight,
        },
        "packbits": {
            "file_bytes": file_bytes - written.payload_bytes + packbits,
            "payload_bytes": packbits,
            "bits_per_weight": 8.0 * packbits / written.weights,
            "computed": True,
        },
    }


def record(
    bundle_path: Path, test: dict[str, Any], train_log: str, train_time: str, note: str, commit: str | None = None
) -> dict[str, Any]:
    from maskctl.bundle.format import read_meta

    meta = read_meta(bundle_path)
    metrics = meta["metrics"]
    per_epoch = [
        {"epoch": h["epoch"], "step": h["step"], "score": h["dev"]["score"]} for h in metrics.get("history", [])
    ]
    return {
        "what": "make demo's two commands, run once on this project's 2-core CPU machine",
        "commands": [
            "maskctl train --output masks/bbc-news-minilm.bundle",
            "maskctl eval masks/bbc-news-minilm.bundle --split test",
        ],
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit or _head(),
        "maskctl": meta.get("maskctl_version"),
        "cores": os.cpu_count(),
        "note": note,
        "training": {
            key: meta["training"].get(key) for key in ("seed", "epochs", "batch_size", "max_length", "lr", "keep")
        },
        "dev": {"history": per_epoch, "kept": metrics.get("kept"), "examples": metrics.get("dev", {}).get("n")},
        "test": {"score": test["metrics"]["score"], "examples": test["metrics"].get("n")},
        "train_wall_s": wall_seconds(train_log),
        "train_peak_rss_mb": peak_rss_mb(train_time),
        "sparsity": meta.get("sparsity"),
        "bundle": {
            "bytes": bundle_path.stat().st_size,
            "sha256": hashlib.sha256(bundle_path.read_bytes()).hexdigest(),
            **coding_sizes(bundle_path),
        },
    }


RULE_ROW = re.compile(r"vote by (label|logit|prob)( \(chosen\))?\s*│\s*([\d.]+)\s*│\s*([\d.]+)\s*│\s*([\d.]+)")


def ensemble_record(folder: Path, note: str, commit: str | None = None) -> dict[str, Any]:
    """The members' dev score (their bundles), test score (the votes file holds each member's
    predictions and the gold), bytes, the rules' test and dev scores (``maskctl ensemble``'s
    table) and the peak memory of the ensemble and of one member's ``maskctl eval``."""
    from maskctl.bundle.format import read_meta

    votes = [json.loads(line) for line in (folder / "votes.jsonl").read_text(encoding="utf-8").splitlines()]
    paths = sorted((folder / "ensemble").glob("news-s*.bundle"))
    members = []
    for i, path in enumerate(paths):
        meta = read_meta(path)
        members.append(
            {
                "seed": meta["training"]["seed"],
                "bundle": path.name,
                "bytes": path.stat().st_size,
                "dev": meta["metrics"]["dev"]["score"],
                "test": sum(row["members"][i] == row["gold"] for row in votes) / len(votes),
            }
        )
    table = (folder / "ensemble.log").read_text(encoding="utf-8")
    rules = {
        m.group(1): {"test": float(m.group(3)), "dev": float(m.group(5)), "chosen": bool(m.group(2))}
        for m in RULE_ROW.finditer(table)
    }
    return {
        "what": "README, Many tasks, one model: four 1-epoch masks of bbc-news and their vote on test",
        "commands": [
            f"maskctl train --epochs 1 --seed {m['seed']} --output ensemble/news-s{m['seed']}.bundle" for m in members
        ]
        + ["maskctl ensemble ensemble/news-s*.bundle --by best --split test"],
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit or _head(),
        "cores": os.cpu_count(),
        "note": note,
        "members": members,
        "rules": rules,
        "examples": len(votes),
        "total_bytes": sum(m["bytes"] for m in members),
        "ensemble_peak_rss_mb": peak_rss_mb((folder / "ensemble.time").read_text(encoding="utf-8")),
        "eval_peak_rss_mb": peak_rss_mb((folder / "eval-s0.time").read_text(encoding="utf-8")),
    }


def _head() -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True
    ).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    runs = parser.add_subparsers(dest="run", required=True)
    demo = runs.add_parser("demo", help="make demo's two commands")
    demo.add_argument("bundle", type=Path)
    demo.add_argument("--test", type=Path, required=True, help="maskctl eval --split test --output FILE")
    demo.add_argument("--train-log", type=Path, required=True, help="maskctl train's output")
    demo.add_argument("--train-time", type=Path, required=True, help="/usr/bin/time -v's report of the training")
    ensemble = runs.add_parser("ensemble", help="the four masks of Many tasks, one model and their vote")
    ensemble.add_argument("folder", type=Path)
    for sub, name in ((demo, "demo.json"), (ensemble, "ensemble.json")):
        sub.add_argument("--note", default="", help="how the machine was loaded, anything a reader should know")
        sub.add_argument("--commit", help="the commit the run used (default: this checkout's HEAD)")
        sub.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "readme" / name)
    args = parser.parse_args(argv)
    if args.run == "demo":
        data = record(
            args.bundle,
            json.loads(args.test.read_text(encoding="utf-8")),
            args.train_log.read_text(encoding="utf-8"),
            args.train_time.read_text(encoding="utf-8"),
            args.note,
            args.commit,
        )
    else:
        data = ensemble_record(args.folder, args.note, args.commit)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
