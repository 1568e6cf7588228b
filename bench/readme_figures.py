#!/usr/bin/env python
"""Write the README's measured figures from recorded runs, so that they cannot drift.

    python bench/readme_figures.py           # rewrite every marked block of README.md
    python bench/readme_figures.py --check   # exit 1 naming each block that differs (the test does this)

A block is the text between ``<!-- figures:NAME -->`` and ``<!-- /figures:NAME -->`` in
README.md; ``BLOCKS`` maps each NAME to the function that writes it from committed files:
``bench/results/readme/*.json`` (``bench/readme_record.py`` records the README's example runs)
and ``bench/results/results-*.md`` (the benchmarks' own tables). Nothing between two markers is
edited by hand: change the run, record it, run this script.

To add a block (a section's table, say the serving figures):

1. write ``def my_block() -> str`` here, reading a results file under ``bench/results/`` and
   returning the Markdown (without the markers; ``_read``, ``table`` and ``prose`` help);
2. add ``"my-block": my_block`` to ``BLOCKS``;
3. put ``<!-- figures:my-block -->`` and ``<!-- /figures:my-block -->`` on their own lines
   where the text goes in README.md, and run this script once.

``tests/test_readme_figures.py`` fails when a block differs from what this script writes, or when
a block is named here but not marked in the README (or the other way round).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
RESULTS = REPO / "bench" / "results"
METHODS = ("mask", "lora", "finetune")
MARKER = re.compile(r"(<!-- figures:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /figures:(?P=name) -->)", re.DOTALL)


def _read(name: str) -> Any:
    return json.loads((RESULTS / name).read_text(encoding="utf-8"))


def table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(row) + " |" for row in rows)]
    )


def prose(text: str) -> str:
    """A paragraph wrapped as the README's own (100 columns; a link or a path is never split)."""
    return textwrap.fill(text, width=100, break_long_words=False, break_on_hyphens=False)


def _pct(value: float) -> str:
    return f"{100 * value:.2f} %"


def demo() -> str:
    """``make demo``'s figures: dev history, test score, time, memory, sparsity, bundle size."""
    d = _read("readme/demo.json")
    history = d["dev"]["history"]
    kept = d["dev"]["kept"]
    steps = history[0]["step"]
    scores = " / ".join(f"**{h['score']:.3f}**" if h["step"] == kept["step"] else f"{h['score']:.3f}" for h in history)
    epochs = " / ".join(f"{h['epoch']:g}" for h in history)
    best = next(h for h in history if h["step"] == kept["step"])
    t, b = d["training"], d["bundle"]
    intro = (
        f"Measured on this project's {d['cores']}-core CPU machine (no GPU): `make demo`'s two commands, once, "
        f"on {d['date']} at commit {d['commit']} ([record](bench/results/readme/demo.json)), seed {t['seed']}, "
        f"{len(history)} epochs of {steps} steps (batch {t['batch_size']}, max length {t['max_length']}, "
        f"lr {t['lr']:g}), keeping the {t['keep']} dev evaluation:"
    )
    rows = [
        [
            f"dev accuracy after epochs {epochs}",
            (
                f"{scores} ({d['dev']['examples']} articles, chance 0.23); epoch {best['epoch']:g} is the best, so the "
                "bundle holds it"
            ),
        ],
        [
            "test accuracy (`maskctl eval --split test`)",
            f"**{d['test']['score']:.3f}** ({d['test']['examples']} articles)",
        ],
        [
            f"wall time of `maskctl train` (load, {len(history)} epochs, evaluations, save)",
            f"{d['train_wall_s']:.0f} s" + (f" ({d['note']})" if d["note"] else ""),
        ],
        ["peak memory (RSS)", f"{d['train_peak_rss_mb'] / 1000:.1f} GB"],
        ["mask sparsity", f"{_pct(d['sparsity']['init'])} at init → {_pct(d['sparsity']['final'])} trained"],
    ]
    bundle = (
        f"The bundle holds the mask over {b['masked_weights']:,} weights (blocks 2–5, pooler, classifier), the "
        f"random classifier's initial values and the JSON self-description (with the dev history): "
        f"{b['bytes']:,} bytes, {8 * b['bytes'] / b['masked_weights']:.2f} bits per masked weight for the "
        f"whole file (its masks at 1 bit per weight, format 1: {b['packbits']['file_bytes']:,} bytes; see "
        "[Bundles](#bundles))."
    )
    return "\n".join([prose(intro), "", table(["", "value"], rows), "", prose(bundle)])


def bundle_sizes() -> str:
    """The demo bundle's masks in each coding (the Bundles section)."""
    d = _read("readme/demo.json")
    b = d["bundle"]
    flips, zeros, packed = b["flips"], b["zero_runs"], b["packbits"]
    return table(
        [
            (
                f"the demo's bbc-news MiniLM bundle ({b['masked_weights']:,} masked weights, final sparsity "
                f"{_pct(d['sparsity']['final'])})"
            ),
            "file bytes",
            "bits per masked weight (masks only)",
        ],
        [
            [
                "format 1: packbits (computed: 1 bit per weight in place of the coded masks)",
                f"{packed['file_bytes']:,}",
                f"{packed['bits_per_weight']:.3f}",
            ],
            [
                "format 2, zero-run coding",
                f"{zeros['file_bytes']:,}",
                f"{zeros['bits_per_weight']:.3f} (H(p) = {b['entropy_bits']:.3f})",
            ],
            [
                "format 2, flipped-bits coding (default)",
                f"**{flips['file_bytes']:,}**",
                (
                    f"**{flips['bits_per_weight']:.3f}** (flip rate {_pct(flips['flip_rate'])}, "
                    f"H = {flips['flip_entropy_bits']:.3f})"
                ),
            ],
        ],
    )


def ensemble() -> str:
    """ "Many tasks, one model": the four members, the chosen vote, the memory."""
    d = _read("readme/ensemble.json")
    rules = d["rules"]
    chosen = next(rule for rule, r in rules.items() if r["chosen"])
    dev = rules[chosen]["dev"]
    ties = [rule for rule, r in rules.items() if r["dev"] == dev]
    others = ", ".join(f"{rule} {r['dev']:.3f}" for rule, r in rules.items() if rule != chosen)
    how = f"all three rules tie at {dev:.3f} there" if len(ties) == 3 else f"the others: {others}"
    rows = [[f"seed {m['seed']}", f"{m['dev']:.3f}", f"{m['test']:.3f}", f"{m['bytes']:,} bytes"] for m in d["members"]]
    rows.append(
        [
            f"ensemble, vote by {chosen} (chosen on dev; {how})",
            f"{dev:.3f}",
            f"**{rules[chosen]['test']:.3f}**",
            f"{d['total_bytes']:,} bytes for all four",
        ]
    )
    intro = (
        f"Measured on this machine ({d['cores']} CPU cores"
        + (f", {d['note']}" if d["note"] else "")
        + "; [record](bench/results/readme/ensemble.json)): four masks for `bbc-news` on the packaged MiniLM, "
        "1 epoch each with seeds 0–3 (`maskctl train --epochs 1 --seed S`), then `maskctl ensemble "
        "ensemble/news-s*.bundle --by best --split test`:"
    )
    memory = (
        f"The four masks together take {d['total_bytes'] / 1e6:.2f} MB. Peak RSS of the 4-member ensemble "
        f"(which also scores dev to choose the rule) was {d['ensemble_peak_rss_mb']:,.0f} MB against "
        f"{d['eval_peak_rss_mb']:,.0f} MB for `maskctl eval` of one bundle "
        f"(×{d['ensemble_peak_rss_mb'] / d['eval_peak_rss_mb']:.2f})."
    )
    return "\n".join([prose(intro), "", table(["", "dev acc", "test acc", "bundle on disk"], rows), "", prose(memory)])


def baselines() -> str:
    """Masking against finetuning and LoRA in a sentence: the default benchmark's step time and
    memory ratios, and the tuned runs' bytes per task."""
    sections = _read("results-default.json")["sections"]
    quality = _read("results-quality.json")
    costs = {method: sorted(quality[task][method]["best"]["bytes"] for task in quality) for method in METHODS}

    def kb(values: list[float]) -> str:
        low, high = (f"{v / 1000:.0f}" for v in (values[0], values[-1]))
        return f"{low} kB" if low == high else f"{low}–{high} kB"

    return prose(
        f"Against finetuning and PEFT LoRA ([BENCHMARKS.md](BENCHMARKS.md), same machine): a masked training step "
        f"takes {sections['step_time']['ratio']:.2f} of a finetuning step and "
        f"{sections['lora']['step_time_ratio_mask_over_lora']:.2f} of a LoRA (r = 8) step, with "
        f"{sections['train_memory']['ratio']:.2f} of finetuning's peak memory. A task costs {kb(costs['mask'])} on "
        f"disk (the tuned settings below, {' and '.join(quality)}) against LoRA's {kb(costs['lora'])} and "
        f"finetuning's {costs['finetune'][-1] / 1e6:.0f} MB."
    )


def quality() -> str:
    """The tuned comparison's two tables, as ``bench/run.py --quality`` wrote them."""
    text = (RESULTS / "results-quality.md").read_text(encoding="utf-8")
    return text.split("\n\nEvery masking setting run")[0].strip()


def flip_front() -> str:
    """The flip budget's front per task (``--max-flips``), as ``bench/run.py --quality`` wrote it."""
    text = (RESULTS / "results-quality.md").read_text(encoding="utf-8")
    start = text.index("The flip budget's front")
    return text[start : text.index("\n\nSeed 0, every setting tried", start)].strip()


def serving() -> str:
    """ "Serving many tasks": total memory and mixed-batch speed against PEFT LoRA, from
    ``bench/run.py --serving-minilm`` and ``--serving-bert-base``."""
    rows, runs = [], []
    parts = [p for p in ("minilm", "bert-base") if (RESULTS / f"results-serving-{p}.json").exists()]
    sections = {}
    for part in parts:
        results = _read(f"results-serving-{part}.json")
        s = sections[part] = results["sections"][f"serving-{part}"]
        runs.append(f"{part}: {results['wall_s'] / 60:.0f} min, {s['rounds']} round" + ("s" if s["rounds"] > 1 else ""))
        for count, row in s["points"].get(part, {}).items():
            mask, lora = row.get("maskctl") or [], row.get("lora") or []
            if not mask or not lora:
                continue
            loaded = min(a["loaded"] for a in lora)
            m_rss, l_rss = (statistics.median([a["hot"]["rss_mib"] for a in side]) for side in (mask, lora))
            cells = [
                f"{m_rss:,.0f} / {l_rss:,.0f}"
                + (f" ({loaded} adapters)" if loaded < int(count) else "")
                + f" = **{m_rss / l_rss:.2f}**"
            ]
            for length in ("short", "long"):
                m, lo = (
                    statistics.median([a["texts_per_s"][f"mixed/{length}"] for a in side]) for side in (mask, lora)
                )
                cells.append(f"{m:.3g} / {lo:.3g} = **{m / lo:.2f}**")
            single = statistics.median(
                [a["texts_per_s"]["mixed/short"] / a["texts_per_s"]["single/short"] for a in mask]
            )
            rows.append([part, f"{int(count):,}", *cells, f"{single:.2f}"])
    minilm = sections["minilm"]
    merged = minilm["single_vs_merged"]
    intro = (
        "`bench/run.py` " + " and ".join(f"`--serving-{p}`" for p in parts) + " ([records](bench/results/), "
        f"{'; '.join(runs)}): each side a fresh process in its default settings, every task hot, "
        f"task variants flipping {100 * minilm['flip_fraction']:.1f} % of the masked weights as trained "
        "bbc-news bundles do, batches of 16 requests each of another task; PEFT LoRA r = 8 on query/value "
        "with a classifier per adapter, mixed batches through `adapter_names`. maskctl / LoRA:"
    )
    after = (
        f"Single-task batches against the merged model of `maskctl eval`: short texts "
        f"{merged['short']['new_over_old']:.2f}, long {merged['long']['new_over_old']:.2f}. "
        "The kernel's own figures, the profile and what the gaps come from: [BENCHMARKS.md](BENCHMARKS.md), "
        '"Serving many tasks".'
    )
    return "\n".join(
        [
            prose(intro),
            "",
            table(
                [
                    "model",
                    "tasks",
                    "total RSS, MiB",
                    "mixed texts/s, short",
                    "mixed texts/s, long",
                    "maskctl mixed / single, short",
                ],
                rows,
            ),
            "",
            prose(after),
        ]
    )


BLOCKS: dict[str, Callable[[], str]] = {
    "demo": demo,
    "baselines": baselines,
    "bundle-sizes": bundle_sizes,
    "ensemble": ensemble,
    "quality": quality,
    "flip-front": flip_front,
    "serving": serving,
}


def blocks_in(text: str) -> dict[str, str]:
    """The marked blocks of ``text`` by name, their text without the markers."""
    return {m.group("name"): m.group("body").strip("\n") for m in MARKER.finditer(text)}


def rewrite(text: str, blocks: dict[str, Callable[[], str]] = BLOCKS) -> str:
    """``text`` with every marked block that ``blocks`` names written afresh."""

    def fill(m: re.Match) -> str:
        write = blocks.get(m.group("name"))
        return m.group(0) if write is None else f"{m.group(1)}{write().strip()}\n{m.group(4)}"

    return MARKER.sub(fill, text)


def problems(text: str, blocks: dict[str, Callable[[], str]] = BLOCKS) -> list[str]:
    """What ``--check`` reports: each block that differs, is not marked, or is marked but unknown."""
    found = blocks_in(text)
    out = [f"block {name!r} is not marked in README.md" for name in blocks if name not in found]
    out += [
        f"block {name!r} is marked in README.md but bench/readme_figures.py has no function for it"
        for name in found
        if name not in blocks
    ]
    out += [
        f"block {name!r} differs from its record: run python bench/readme_figures.py"
        for name, body in found.items()
        if name in blocks and body != blocks[name]().strip()
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block differs")
    args = parser.parse_args(argv)
    text = README.read_text(encoding="utf-8")
    if args.check:
        found = problems(text)
        for line in found:
            print(line, file=sys.stderr)
        return 1 if found else 0
    README.write_text(rewrite(text), encoding="utf-8")
    print(f"wrote {len(blocks_in(text))} blocks of {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
