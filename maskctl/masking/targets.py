"""Which ``nn.Linear`` modules a mask covers, as one small mapping per architecture family.

Zhao et al. mask, in each selected transformer block, the attention query, key, value and
output projections and the feed-forward in/out projections; plus the pooler and the task
classifier. Embeddings, biases and LayerNorm are never masked.

A family names where its blocks live and the six linears inside a block, and which head
modules play the pooler and output-layer roles. Adding an architecture means registering one
``Family`` in ``FAMILIES`` (below, or from another package through the entry-point group
``maskctl.families``, whose entry names a ``Family``) and nothing else. Models whose ``model_type`` is not listed are
matched by structure (any BERT-like encoder, e.g. MiniLM, ELECTRA), else refused clearly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from maskctl.errors import ModelError, SettingError
from maskctl.registry import Registry


@dataclass(frozen=True)
class Family:
    """Where the maskable linears of one architecture family live."""

    name: str
    model_types: tuple[str, ...]
    blocks: str  # path of the ModuleList of blocks, relative to the base model
    block_linears: tuple[str, ...]  # Q, K, V, attention out, FFN in, FFN out (block-relative)
    poolers: tuple[str, ...]  # candidate pooler paths, relative to the task model
    outputs: tuple[str, ...]  # candidate output-layer (classifier) paths, relative to the task model


BERT_BLOCK_LINEARS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)

FAMILIES: Registry[Family] = Registry("model family", group="maskctl.families", error=ModelError)
for _family in (
    Family(
        name="bert",
        model_types=("bert", "electra", "ernie", "megatron-bert"),
        blocks="encoder.layer",
        block_linears=BERT_BLOCK_LINEARS,
        poolers=("bert.pooler.dense", "electra.pooler.dense", "ernie.pooler.dense", "classifier.dense"),
        outputs=("classifier", "classifier.out_proj"),
    ),
    Family(
        name="roberta",
        model_types=("roberta", "xlm-roberta", "camembert", "xlm-roberta-xl"),
        blocks="encoder.layer",
        block_linears=BERT_BLOCK_LINEARS,
        poolers=("classifier.dense", "roberta.pooler.dense"),
        outputs=("classifier.out_proj", "classifier"),
    ),
    Family(
        name="distilbert",
        model_types=("distilbert",),
        blocks="transformer.layer",
        block_linears=(
            "attention.q_lin",
            "attention.k_lin",
            "attention.v_lin",
            "attention.out_lin",
            "ffn.lin1",
            "ffn.lin2",
        ),
        poolers=("pre_classifier",),
        outputs=("classifier",),
    ),
):
    FAMILIES.register(_family.name, _family)


def family_for(model: nn.Module) -> Family:
    """The family of a transformers model: by ``config.model_type``, then by structure."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    families = FAMILIES.values()
    for family in families:
        if model_type in family.model_types:
            return family
    base = _base_model(model)
    for family in families:
        blocks = _get(base, family.blocks)
        if (
            isinstance(blocks, nn.ModuleList)
            and len(blocks)
            and all(isinstance(_get(blocks[0], name), nn.Linear) for name in family.block_linears)
        ):
            return family
    known = ", ".join(t for f in families for t in f.model_types)
    raise ModelError(
        f"model type {model_type!r} is not a supported encoder architecture",
        f"use a BERT-, RoBERTa- or DistilBERT-like encoder (known types: {known})",
    )


def num_blocks(model: nn.Module) -> int:
    return len(_get(_base_model(model), family_for(model).blocks))


def parse_blocks(spec: str | None, n_blocks: int | None) -> list[int]:
    """Parse ``--mask-blocks``: ``2-11``, ``all``, ``top:K``, ``bottom:K``, ``3,5,7`` or None.

    None means the paper's default: every block but the lowest two (2-11 of 12, 2-5 of 6).
    Block indices are 0-based, as in the paper's text. With ``n_blocks`` None only the syntax
    is checked (settings are validated before the model is loaded) and nothing is returned.
    """
    if spec is None or spec == "default":
        return list(range(min(2, n_blocks - 1), n_blocks)) if n_blocks is not None else []
    spec = spec.strip().lower()
    if spec in ("all", "none"):
        return list(range(n_blocks)) if spec == "all" and n_blocks is not None else []
    limit = n_blocks if n_blocks is not None else 1 << 30
    match = re.fullmatch(r"(top|bottom):(\d+)", spec)
    if match:
        k = int(match.group(2))
        if not 0 <= k <= limit:
            raise SettingError(
                f"--mask-blocks {spec}: K must be between 0 and {n_blocks}", f"this model has {n_blocks} blocks"
            )
        if n_blocks is None:
            return []
        return list(range(n_blocks - k, n_blocks)) if match.group(1) == "top" else list(range(k))
    blocks: set[int] = set()
    for part in spec.split(","):
        bounds = re.fullmatch(r"(\d+)(?:-(\d+))?", part.strip())
        if not bounds:
            raise SettingError(
                f"--mask-blocks {spec!r} is not a block list",
                "use 2-11, all, none, top:K, bottom:K or a list like 2,3,5",
            )
        lo = int(bounds.group(1))
        hi = int(bounds.group(2) or lo)
        if lo > hi or hi >= limit:
            raise SettingError(
                f"--mask-blocks {spec!r}: this model has blocks 0-{limit - 1}", f"pick blocks between 0 and {limit - 1}"
            )
        blocks.update(range(lo, hi + 1))
    return sorted(blocks) if n_blocks is not None else []


@dataclass(frozen=True)
class Targets:
    """The module names to mask, split by role (block linears, pooler, output layer)."""

    blocks: tuple[str, ...]
    pooler: str | None
    output: str | None

    @property
    def all(self) -> tuple[str, ...]:
        head = tuple(n for n in (self.pooler, self.output) if n)
        return self.blocks + head


def block_paths(model: nn.Module, block_ids: list[int]) -> list[str]:
    """The full module names of the blocks ``block_ids`` of ``model``."""
    family = family_for(model)
    prefix = getattr(model, "base_model_prefix", "")
    base = _base_model(model)
    blocks = _get(base, family.blocks)
    base_path = f"{prefix}.{family.blocks}" if prefix and base is not model else family.blocks
    for i in block_ids:
        if not 0 <= i < len(blocks):
            raise SettingError(
                f"block {i} does not exist: this model has blocks 0-{len(blocks) - 1}",
                f"pick blocks between 0 and {len(blocks) - 1}",
            )
    return [f"{base_path}.{i}" for i in block_ids]


def find_targets(model: nn.Module, block_ids: list[int]) -> Targets:
    """Resolve the full module names of every linear to mask in ``model``."""
    family = family_for(model)
    names = [f"{path}.{linear}" for path in block_paths(model, block_ids) for linear in family.block_linears]
    pooler = _first_linear(model, family.poolers)
    output = _first_linear(model, family.outputs)
    return Targets(blocks=tuple(names), pooler=pooler, output=output)


def _first_linear(model: nn.Module, candidates: tuple[str, ...]) -> str | None:
    for name in candidates:
        if isinstance(_get(model, name), nn.Linear):
            return name
    return None


def _base_model(model: nn.Module) -> nn.Module:
    prefix = getattr(model, "base_model_prefix", "")
    return getattr(model, prefix, model) if prefix else model


def _get(module: nn.Module, path: str):
    try:
        return module.get_submodule(path)
    except AttributeError:
        return None
