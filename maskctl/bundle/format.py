"""Save, load and validate ``*.bundle`` files: safetensors holding packed masks plus JSON.

Layout of one bundle (all in a single safetensors file, no pickle anywhere):

* ``mask/<module name>``  uint8, the binary mask packed 1 bit per weight (``codec.pack_mask``)
* ``head/<param name>``   float tensors the base checkpoint does not have: the randomly
  initialised classifier (its initial values: it is masked, not trained) or a trained head
* metadata ``maskctl``    JSON self-description: format version, maskctl version, base model
  (spec, source, revision, fingerprint), task card and labels, masked layers with shapes and
  sparsities, mask settings (tau, initial sparsity, seed), training arguments, dev metrics.

Writes are atomic (temporary file, then rename), so a crash never leaves half a bundle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from maskctl import __version__
from maskctl.bundle.codec import pack_mask, unpack_mask
from maskctl.errors import BundleError
from maskctl.io import atomic_path

FORMAT_NAME = "maskctl.bundle"
FORMAT_VERSION = 1
MASK_PREFIX = "mask/"
HEAD_PREFIX = "head/"


@dataclass
class Bundle:
    """One task's mask over one base model, with everything ``eval`` needs besides the base."""

    masks: dict[str, torch.Tensor]  # module name -> bool mask, shaped like the weight
    head: dict[str, torch.Tensor] = field(default_factory=dict)  # param name -> tensor
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def labels(self) -> list[str]:
        return list(self.meta["task"]["labels"])

    @property
    def task_name(self) -> str:
        return self.meta["task"]["name"]

    @property
    def fingerprint(self) -> str:
        return self.meta["base_model"]["fingerprint"]

    def masked_weight_count(self) -> int:
        return sum(int(m.numel()) for m in self.masks.values())


def save_bundle(bundle: Bundle, path: str | Path) -> Path:
    """Write ``bundle`` atomically to ``path``; return the path."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    layers = []
    for name, mask in bundle.masks.items():
        tensors[MASK_PREFIX + name] = pack_mask(mask)
        layers.append({"name": name, "shape": list(mask.shape)})
    for name, tensor in bundle.head.items():
        tensors[HEAD_PREFIX + name] = tensor.detach().cpu().contiguous()
    meta = dict(bundle.meta)
    meta.update(format=FORMAT_NAME, format_version=FORMAT_VERSION, maskctl_version=__version__)
    known = {layer["name"]: layer for layer in meta.get("layers", [])}
    meta["layers"] = [{**known.get(layer["name"], {}), **layer} for layer in layers]
    metadata = {"format": FORMAT_NAME, "maskctl": json.dumps(meta, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    bundle.meta, bundle.path = meta, path
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """Read only a bundle's JSON self-description (cheap: no tensor is loaded)."""
    path = _check_path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as exc:  # safetensors raises several types for a bad header
        raise _not_a_bundle(path, exc) from exc
    return _parse_meta(path, metadata)


def load_bundle(path: str | Path) -> Bundle:
    """Load and validate a bundle; raise ``BundleError`` with a fix for any bad file."""
    path = _check_path(path)
    masks: dict[str, torch.Tensor] = {}
    head: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = _parse_meta(path, handle.metadata() or {})
            shapes = {layer["name"]: layer["shape"] for layer in meta.get("layers", [])}
            for key in handle.keys():
                if key.startswith(MASK_PREFIX):
                    name = key[len(MASK_PREFIX):]
                    if name not in shapes:
                        raise BundleError(f"{path}: mask {name} has no shape in the metadata",
                                          "the bundle is damaged; train it again")
                    masks[name] = unpack_mask(handle.get_tensor(key), shapes[name])
                elif key.startswith(HEAD_PREFIX):
                    head[key[len(HEAD_PREFIX):]] = handle.get_tensor(key)
    except BundleError:
        raise
    except Exception as exc:
        raise _not_a_bundle(path, exc) from exc
    missing = set(shapes) - set(masks)
    if missing:
        raise BundleError(f"{path}: masks missing for {sorted(missing)[:3]}",
                          "the bundle is damaged or truncated; train it again")
    return Bundle(masks=masks, head=head, meta=meta, path=path)


def _check_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise BundleError(f"bundle {path} does not exist", "check the path (train one with `maskctl train`)")
    if path.is_dir():
        raise BundleError(f"{path} is a directory, not a bundle",
                          "pass a *.bundle file (finetuned models are directories: use them as --model)")
    return path


def _parse_meta(path: Path, metadata: dict[str, str]) -> dict[str, Any]:
    if metadata.get("format") != FORMAT_NAME or "maskctl" not in metadata:
        raise BundleError(f"{path} is a safetensors file but not a maskctl bundle",
                          "pass a file written by `maskctl train`")
    try:
        meta = json.loads(metadata["maskctl"])
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: the bundle metadata is not valid JSON ({exc.msg})",
                          "the bundle is damaged; train it again") from exc
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BundleError(f"{path} has bundle format version {version}, this maskctl reads up to {FORMAT_VERSION}",
                          "upgrade maskctl (pip install -U maskctl)")
    return meta


def _not_a_bundle(path: Path, exc: Exception) -> BundleError:
    return BundleError(f"{path} is not a readable bundle ({type(exc).__name__}: {str(exc)[:120]})",
                       "the file is truncated or not a bundle; pass a file written by `maskctl train`")
