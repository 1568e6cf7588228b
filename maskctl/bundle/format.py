"""Save, load and validate ``*.bundle`` files: safetensors holding coded masks plus JSON.

Layout of one bundle (all in a single safetensors file, no pickle anywhere):

* ``mask/<module name>``  uint8. Formats 2 and 3: the mask entropy-coded (its zeros, or only the bits
  that flipped from the regenerable initial mask, compressed with zstd), described by the
  layer's ``coding`` entry so decoding never guesses (``mask_coding.py``). Format 1: packbits,
  1 bit per weight
* ``head/<param name>``   float tensors the base checkpoint does not have: the randomly
  initialised classifier (its initial values: it is masked, not trained) or a trained head
* ``tuned/<param name>``  float16 deltas of the base parameters trained beside the mask
  (``--also-train``: the masked blocks' biases and LayerNorms, ``masking/tuned.py``); their
  names and the fingerprint of the pristine values are in the metadata's ``tuned`` entry
* metadata ``maskctl``    JSON self-description: format version, maskctl version, base model
  (spec, source, revision, fingerprint), task card and labels, masked layers with shapes,
  sparsities and coding, mask settings (tau, initial sparsity, seed), the initial-mask
  generator (``mask_coding``) when a layer is coded against it, training arguments, metrics;
  no absolute machine path (``portable.py``: names, and hints relative to the bundle's folder).

Every reader takes an ``hf://user/name[/file.bundle][@revision]`` reference too
(``hub_ref.resolve_bundle_ref``, in ``_check_path``).

The current format is 3 (``FORMAT_VERSION``): it is written when the bundle has tuned tensors (an
older maskctl refuses it instead of silently serving the base values), format 2 otherwise, so an
older maskctl still reads every bundle it can serve; format 1 files are still read bit-exactly
(``tests/fixtures/bundles/`` holds one of each format). Writes are atomic
(temporary file, then rename) and verified: the temporary file is read back through the
loader and every mask compared before the rename, so a crash or a codec fault never leaves a
bad bundle in place.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load as safetensors_load
from safetensors.torch import save_file

from maskctl.bundle.hub_ref import resolve_bundle_ref
from maskctl.bundle.mask_coding import (
    InitialMasks,
    MaskCodingError,
    decode_mask,
    encode_mask,
    initial_masks_from_meta,
    unpack_mask,
)
from maskctl.bundle.meta import Described
from maskctl.bundle.portable import portable_meta, without_paths
from maskctl.choices import BUNDLE_SUFFIX
from maskctl.errors import BundleError, MaskctlError
from maskctl.io import atomic_path
from maskctl.version import __version__

FORMAT_NAME = "maskctl.bundle"
PLAIN_FORMAT = 2  # what a bundle without tuned tensors is written as
TUNED_FORMAT = 3  # written only by bundles with tuned tensors
FORMAT_VERSION = TUNED_FORMAT  # the newest this version reads
MASK_PREFIX = "mask/"
HEAD_PREFIX = "head/"
TUNED_PREFIX = "tuned/"


@dataclass
class Bundle(Described):
    """One task's mask over one base model, with everything ``eval`` needs besides the base."""

    masks: dict[str, torch.Tensor]  # module name -> bool mask, shaped like the weight
    head: dict[str, torch.Tensor] = field(default_factory=dict)  # param name -> tensor
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    tuned: dict[str, torch.Tensor] = field(default_factory=dict)  # base param name -> float16 delta

    @property
    def labels(self) -> list[str]:
        return self.info.labels

    @property
    def task_name(self) -> str:
        return self.info.task_name

    @property
    def fingerprint(self) -> str:
        return self.info.base_model.fingerprint


def check_bundle_output(output: Path) -> None:
    """A mask run's ``--output`` must name a bundle file (checked before anything is loaded)."""
    if output.suffix != BUNDLE_SUFFIX:
        raise MaskctlError(f"--output {output} should end in {BUNDLE_SUFFIX}", "e.g. --output masks/news.bundle")


def save_bundle(bundle: Bundle, path: str | Path, *, xor_initial: bool = True) -> Path:
    """Write ``bundle`` atomically to ``path`` (format 3 with tuned tensors, else 2); return the path.

    Masks are coded against their regenerated initial mask when the bundle's ``mask`` settings
    allow it and that is smaller (``xor_initial=False`` forbids it: the file then decodes
    without the generator). The written file is read back and compared before it replaces
    ``path``.
    """
    path = Path(path)
    initial = InitialMasks.from_settings(bundle.meta.get("mask")) if xor_initial else None
    tensors: dict[str, torch.Tensor] = {}
    layers: list[dict[str, Any]] = []
    for name, mask in bundle.masks.items():
        payload, coding = encode_mask(name, mask, initial)
        tensors[MASK_PREFIX + name] = torch.from_numpy(np.frombuffer(payload, dtype=np.uint8).copy())
        layers.append({"name": name, "shape": list(mask.shape), "coding": coding})
    for name, tensor in bundle.head.items():
        tensors[HEAD_PREFIX + name] = tensor.detach().cpu().contiguous()
    for name, tensor in bundle.tuned.items():
        tensors[TUNED_PREFIX + name] = tensor.detach().cpu().contiguous()
    meta = portable_meta(bundle.meta, path, origin=bundle.path)  # no absolute machine paths in the file
    meta.update(
        format=FORMAT_NAME, format_version=TUNED_FORMAT if bundle.tuned else PLAIN_FORMAT, maskctl_version=__version__
    )
    meta.pop("mask_coding", None)
    if initial is not None and any(layer["coding"]["scheme"] == "xor-initial" for layer in layers):
        meta["mask_coding"] = initial.to_meta()
    known = {layer["name"]: layer for layer in meta.get("layers", [])}
    meta["layers"] = [{**known.get(layer["name"], {}), **layer} for layer in layers]
    # One metadata key only: safetensors writes its metadata map in no fixed order, and a single
    # key keeps the file's bytes a function of its content (a resumed run writes the same file).
    metadata = {"maskctl": json.dumps(meta, sort_keys=True)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
        _verify_written(tmp, bundle, path)
    bundle.meta, bundle.path = meta, path
    return path


def write_shareable(path: str | Path, target: str | Path) -> Path:
    """A copy of the bundle at ``path`` for other machines (``maskctl push``): the same tensors
    and description without machine paths or the ``local`` hints that find this machine's
    folders again (``portable.without_paths``; older bundles' absolute paths go too)."""
    source = _check_path(path)
    try:
        metadata, tensors = _read_owned(source)
    except Exception as exc:
        raise _not_a_bundle(source, exc) from exc
    meta, _ = without_paths(_parse_meta(source, metadata))
    with atomic_path(Path(target)) as tmp:
        save_file(tensors, str(tmp), metadata={**metadata, "maskctl": json.dumps(meta, sort_keys=True)})
    return Path(target)


def read_meta(path: str | Path) -> dict[str, Any]:
    """Read only a bundle's JSON self-description (cheap: no tensor is loaded)."""
    path = _check_path(path)
    try:
        with path.open("rb") as handle:
            start = handle.read(8)
            metadata = _header_metadata(start, handle.read(int.from_bytes(start, "little")) if len(start) == 8 else b"")
    except Exception as exc:  # a short, damaged or foreign file
        raise _not_a_bundle(path, exc) from exc
    return _parse_meta(path, metadata)


def load_bundle(path: str | Path) -> Bundle:
    """Load and validate a bundle; raise ``BundleError`` with a fix for any bad file."""
    path = _check_path(path)
    masks, head, meta, tuned = _read(path)
    return Bundle(masks=masks, head=head, meta=meta, path=path, tuned=tuned)


class MaskReader(Described):
    """A bundle opened to decode its masks one layer at a time, exactly as ``load_bundle`` does.

    Why: analyses that compare several bundles of a large model (mask differences per layer)
    need one layer of each bundle at a time, not every mask of every bundle in memory. The
    metadata is parsed and the initial-mask generator built once; ``mask(name)`` decodes one
    layer through the same ``_decode`` path (CRC-checked) as ``load_bundle``.
    """

    path: Path

    def __init__(self, path: str | Path):
        self.path = _check_path(path)
        self._handle: Any = None  # a safetensors safe_open until close()
        try:
            self._handle = safe_open(str(self.path), framework="pt")
            metadata = self._handle.metadata() or {}
        except Exception as exc:
            raise _not_a_bundle(self.path, exc) from exc
        self.meta = _parse_meta(self.path, metadata)
        self.layers = {layer["name"]: layer for layer in self.meta.get("layers", [])}
        self.initial = _initial_masks(self.path, self.meta)

    def close(self) -> None:
        """Release the file (masks already returned stay valid)."""
        self._handle = None

    def mask(self, name: str) -> torch.Tensor:
        """The bool mask of layer ``name``; ``BundleError`` if it is absent or damaged."""
        if name not in self.layers:
            raise BundleError(f"{self.path} has no masked layer {name}", "pass bundles trained on the same layers")
        try:
            tensor = self._handle.get_tensor(MASK_PREFIX + name)
        except Exception as exc:
            raise BundleError(
                f"{self.path}: mask {name} is missing or unreadable ({type(exc).__name__})",
                "the bundle is damaged or truncated; train it again",
            ) from exc
        return _decode(self.path, name, tensor, self.layers[name], self.meta, self.initial)


@dataclass
class CodedMasks(Described):
    """A bundle's masks as stored (coded bytes: about the file's size, under 1 bit per masked
    weight), decoded one layer at a time on demand through the same CRC-checked ``_decode``
    as ``load_bundle``. Serving keeps thousands of tasks in memory this way."""

    path: Path
    meta: dict[str, Any]
    payloads: dict[str, torch.Tensor]
    initial: InitialMasks | None
    tuned: dict[str, torch.Tensor] = field(default_factory=dict)  # base param name -> float16 delta

    def meta_layer(self, name: str) -> dict[str, Any]:
        return next(lay for lay in self.meta["layers"] if lay["name"] == name)

    def decode(self, name: str) -> torch.Tensor:
        return _decode(self.path, name, self.payloads[name], self.meta_layer(name), self.meta, self.initial)

    def decode_all(self) -> dict[str, torch.Tensor]:
        return {name: self.decode(name) for name in self.payloads}

    def without(self, names: Collection[str]) -> CodedMasks:
        """The same bundle without the layers ``names``: their payloads and their coding entries
        (a served task that holds those layers in another form; per task the entries were most of
        its parsed description, 25 layer dicts for MiniLM)."""
        meta = {**self.meta, "layers": [lay for lay in self.meta.get("layers", []) if lay["name"] not in names]}
        return replace(self, meta=meta, payloads={n: p for n, p in self.payloads.items() if n not in names})

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.payloads.values(), *self.tuned.values()))


def read_coded(path: str | Path) -> tuple[CodedMasks, dict[str, torch.Tensor]]:
    """The coded masks (with the tuned deltas) and the head tensors of a bundle, nothing
    decoded yet."""
    path = _check_path(path)
    payloads: dict[str, torch.Tensor] = {}
    head: dict[str, torch.Tensor] = {}
    tuned: dict[str, torch.Tensor] = {}
    try:
        metadata, tensors = _read_owned(path)
        meta = _parse_meta(path, metadata)
        layers = {layer["name"] for layer in meta.get("layers", [])}
        initial = _initial_masks(path, meta)
        for key, tensor in tensors.items():
            if key.startswith(MASK_PREFIX):
                name = key[len(MASK_PREFIX) :]
                if name not in layers:
                    raise BundleError(
                        f"{path}: mask {name} has no shape in the metadata", "the bundle is damaged; train it again"
                    )
                payloads[name] = tensor
            elif key.startswith(HEAD_PREFIX):
                head[key[len(HEAD_PREFIX) :]] = tensor
            elif key.startswith(TUNED_PREFIX):
                tuned[key[len(TUNED_PREFIX) :]] = tensor
    except BundleError:
        raise
    except Exception as exc:
        raise _not_a_bundle(path, exc) from exc
    missing = layers - set(payloads)
    if missing:
        raise BundleError(
            f"{path}: masks missing for {sorted(missing)[:3]}", "the bundle is damaged or truncated; train it again"
        )
    listed = (meta.get("tuned") or {}).get("tensors") or []
    if set(listed) != set(tuned) or any(t.dtype != torch.float16 for t in tuned.values()):
        raise BundleError(
            f"{path}: its tuned tensors do not match the metadata's list",
            "the bundle is damaged or truncated; train it again",
        )
    # the metadata's layer order is the model's order; the file's tensor order is not promised
    ordered = {layer["name"]: payloads[layer["name"]] for layer in meta["layers"]}
    return CodedMasks(
        path=path, meta=meta, payloads=ordered, initial=initial, tuned={name: tuned[name] for name in listed}
    ), head


def _read_owned(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """A bundle's metadata and tensors read into memory the process owns.

    Why not ``safe_open``: its torch tensors are views of a private mmap of the file, so a
    served bundle overwritten in place (truncated, then rewritten) kills the server with SIGBUS
    on the next touch of a page past the new end, and a file read while it is being written can
    do the same. One ``read_bytes`` (a bundle is a few MB at most) has neither problem."""
    data = path.read_bytes()
    return _header_metadata(data[:8], data[8 : 8 + int.from_bytes(data[:8], "little")]), safetensors_load(data)


def _header_metadata(start: bytes, header: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors header (``start``: its 8-byte length)."""
    if len(start) < 8 or len(header) != int.from_bytes(start, "little"):
        raise ValueError("the file ends inside its safetensors header")
    parsed = json.loads(header)
    metadata = (parsed.get("__metadata__") or {}) if isinstance(parsed, dict) else None
    if not isinstance(metadata, dict):
        raise ValueError("the header is not a safetensors header")
    return metadata


def _read(
    path: Path,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any], dict[str, torch.Tensor]]:
    coded, head = read_coded(path)
    return coded.decode_all(), head, coded.meta, coded.tuned


def _initial_masks(path: Path, meta: dict[str, Any]) -> InitialMasks | None:
    if meta["format_version"] < 2:
        return None
    try:
        return initial_masks_from_meta(meta)
    except MaskCodingError as exc:
        raise BundleError(
            f"{path}: {exc}", "upgrade maskctl (pip install -U maskctl), or train the bundle again"
        ) from exc


def _decode(
    path: Path,
    name: str,
    tensor: torch.Tensor,
    layer: dict[str, Any],
    meta: dict[str, Any],
    initial: InitialMasks | None,
) -> torch.Tensor:
    """One mask from its stored tensor: packbits in format 1, the recorded coding in formats 2 and 3."""
    if meta["format_version"] < 2:
        return unpack_mask(tensor, layer["shape"])
    coding = layer.get("coding")
    if not isinstance(coding, Mapping):
        raise BundleError(f"{path}: mask {name} has no coding in the metadata", "the bundle is damaged; train it again")
    if tensor.dtype != torch.uint8 or tensor.dim() != 1:
        raise BundleError(
            f"{path}: mask {name} is stored as {tensor.dtype} {tuple(tensor.shape)}, not coded bytes",
            "the bundle is damaged; train it again",
        )
    try:
        return decode_mask(name, tensor.numpy().tobytes(), layer["shape"], coding, initial)
    except MaskCodingError as exc:
        fix = "the file is damaged; copy it again or train it again"
        if coding.get("scheme") == "xor-initial":
            saved = meta.get("mask_coding", {}).get("numpy", "?")
            fix = (
                f"the file is damaged, or this platform regenerates another initial mask (saved with numpy "
                f"{saved}, this is {np.__version__}): load it where it was saved and re-save it with "
                f"save_bundle(bundle, path, xor_initial=False)"
            )
        raise BundleError(f"{path}: mask {name} cannot be decoded: {exc}", fix) from exc


def _verify_written(tmp: Path, bundle: Bundle, path: Path) -> None:
    """Cheap insurance: decode the file just written and compare every mask and tuned delta
    bit for bit."""
    written, _, _, tuned = _read(tmp)
    expected = {
        **{f"mask {n}": m.detach().cpu().bool() for n, m in bundle.masks.items()},
        **{f"tuned tensor {n}": t.detach().cpu() for n, t in bundle.tuned.items()},
    }
    found = {**{f"mask {n}": m for n, m in written.items()}, **{f"tuned tensor {n}": t for n, t in tuned.items()}}
    for name, value in expected.items():
        if name not in found or not torch.equal(found[name], value):
            raise BundleError(
                f"{name} did not read back bit-exactly after writing {path}",
                "this is a maskctl bug; please report it (nothing was replaced)",
            )


def _check_path(path: str | Path) -> Path:
    path = resolve_bundle_ref(path)  # an hf:// reference: the file in the Hugging Face cache
    if not path.exists():
        raise BundleError(f"bundle {path} does not exist", "check the path (train one with `maskctl train`)")
    if path.is_dir():
        finetuned = (path / "maskctl_training.json").is_file() or (path / "maskctl_export.json").is_file()
        raise BundleError(
            f"{path} is {'a finetuned or exported model folder' if finetuned else 'a directory'}, not a bundle",
            "pass a *.bundle file; a model folder is a plain Hugging Face model: "
            "load it with transformers' from_pretrained",
        )
    return path


def _parse_meta(path: Path, metadata: dict[str, str]) -> dict[str, Any]:
    not_ours = BundleError(
        f"{path} is a safetensors file but not a maskctl bundle", "pass a file written by `maskctl train`"
    )
    if "maskctl" not in metadata:
        raise not_ours
    try:
        meta = json.loads(metadata["maskctl"])
    except json.JSONDecodeError as exc:
        raise BundleError(
            f"{path}: the bundle metadata is not valid JSON ({exc.msg})", "the bundle is damaged; train it again"
        ) from exc
    if FORMAT_NAME not in (metadata.get("format"), meta.get("format")):  # early files: a separate key
        raise not_ours
    version = meta.get("format_version")
    if isinstance(version, int) and version < 1:
        raise BundleError(
            f"{path} has invalid bundle format version {version}", "the bundle is damaged; train it again"
        )
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BundleError(
            f"{path} has bundle format version {version}, this maskctl reads up to {FORMAT_VERSION}",
            "upgrade maskctl (pip install -U maskctl)",
        )
    return meta


def _not_a_bundle(path: Path, exc: Exception) -> BundleError:
    """The error for a file the safetensors reader refused, saying what is wrong in a user's
    words. Why not the reader's own message: it speaks of its internals, or of nothing (a text
    file's first 8 bytes, read as a header length, ask for exabytes: "MemoryError: ")."""
    return BundleError(
        f"{path} is not a readable bundle: {_what_is_wrong(path)}",
        "pass a file written by `maskctl train` (a copy cut short: copy it again)",
    )


def _what_is_wrong(path: Path) -> str:
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            start = handle.read(8)
            length = int.from_bytes(start, "little")
            header = handle.read(min(length, 1 << 20)) if len(start) == 8 and length <= size - 8 else b""
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    if size < 8:
        return f"{size} bytes, too short for a safetensors file"
    if length > size - 8:
        return "it is not a safetensors file, or it was cut short inside its header"
    if not header.lstrip().startswith(b"{"):
        return "it is not a safetensors file (its header is not JSON)"
    return "its header or tensors are damaged, or it was cut short"
