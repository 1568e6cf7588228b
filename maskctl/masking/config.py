"""``MaskConfig``: how a model is masked, one dataclass whose fields carry their own help and
bounds (PEFT's ``config.py``). Kept free of torch: ``maskctl train``'s options are generated from
it, and every ``maskctl --help`` / ``--version`` / Tab of completion builds those options."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from maskctl.schema import check_fields, setting

DEFAULT_THRESHOLD = 0.01
DEFAULT_INIT_SPARSITY = 0.05
HEAD_MODES = ("mask", "train")
# --also-train: base parameters trained beside the mask inside the masked blocks (masking/tuned.py)
ALSO_TRAIN = ("none", "bias", "layernorm", "bias+layernorm")
DEFAULT_TUNED_LR = 1e-3


@dataclass
class MaskConfig:
    """How to mask a model; stored verbatim in every bundle. The bounds live on the fields
    (``maskctl.schema``); ``TrainArgs`` reuses them for its options."""

    threshold: float = setting(DEFAULT_THRESHOLD, "Score threshold tau of the binary mask.")
    init_sparsity: float = setting(DEFAULT_INIT_SPARSITY, "Fraction of mask bits that start at zero.", above=0, below=1)
    blocks: str | None = setting(None, "--mask-blocks spec; None = all but the lowest two.")
    head: str = setting("mask", "mask: classifier masked, not trained (paper); train: trained.", choices=HEAD_MODES)
    seed: int = setting(0, "Seed of the initial scores.")

    def __post_init__(self) -> None:
        check_fields(self)

    def to_dict(self) -> dict:
        return asdict(self)
