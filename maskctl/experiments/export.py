"""Export a bundle as a plain Hugging Face model folder: masks merged into the weights.

The folder (``config.json`` with ``id2label``/``label2id``, weights, tokenizer) loads with
``AutoModelFor<Kind>.from_pretrained`` where maskctl is not installed and predicts exactly
what ``maskctl eval`` scores, with a model card (``README.md``, ``library_name: transformers``)
so the folder can go to the Hub as it is. It costs a full model copy: for serving many tasks
from one model, keep the bundles instead.
"""

from __future__ import annotations

import json
from pathlib import Path

from maskctl.bundle.format import load_bundle
from maskctl.bundle.hub_ref import is_hub_ref
from maskctl.bundle.meta import BundleMeta, TaskRecord
from maskctl.bundle.model_card import export_card
from maskctl.bundle.portable import without_paths
from maskctl.choices import EXPORT_FORMATS
from maskctl.errors import MaskctlError
from maskctl.io import atomic_dir, refuse_existing
from maskctl.models import save_model_folder
from maskctl.serving.loading import load_masked
from maskctl.version import __version__

FORMATS = EXPORT_FORMATS


def export_bundle(
    path: str | Path, output: str | Path, model: str | None = None, fmt: str = "hf", overwrite: bool = False
) -> Path:
    if fmt not in FORMATS:
        raise MaskctlError(f"unknown export format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    output = Path(output)
    refuse_existing(output, overwrite)
    bundle = load_bundle(path)
    masked = load_masked(bundle, model=model)
    described = BundleMeta.from_dict(without_paths(bundle.meta)[0])  # the folder may be shared: no machine paths
    exported_from = str(path) if is_hub_ref(path) else Path(path).name
    with atomic_dir(output) as tmp:
        save_model_folder(masked.model, masked.tokenizer, tmp)
        provenance = {
            "exported_from": exported_from,
            "maskctl_version": __version__,
            "task": described.task.to_dict(),
            "base_model": described.base_model.to_dict(),
            "metrics": described.metrics.to_dict(),
        }
        (tmp / "maskctl_export.json").write_text(json.dumps(provenance, indent=2), encoding="utf-8")
        card = export_card(
            bundle.meta,
            auto_class=masked.task.kind.auto_class,
            exported_from=exported_from,
            bundle_bytes=Path(bundle.path).stat().st_size,
        )
        (tmp / "README.md").write_text(card, encoding="utf-8")
    return output


def exported_auto_class(folder: str | Path) -> str:
    """The transformers auto class that loads a folder ``export_bundle`` wrote (from its
    ``maskctl_export.json``)."""
    from maskctl.tasks.kinds import get_kind

    provenance = json.loads((Path(folder) / "maskctl_export.json").read_text(encoding="utf-8"))
    return get_kind(TaskRecord(provenance["task"]).kind).auto_class
