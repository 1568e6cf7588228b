"""``MaskedLinear``: a frozen ``nn.Linear`` whose weight is gated by a learned binary mask.

Forward uses ``W * 1[S > tau]``; backward is the straight-through estimator of Zhao et al.
2020: the gradient reaching the binary mask is handed to the real-valued scores ``S``
unchanged, so ``dL/dS = dL/dW_hat * W``. Like a PEFT tuner layer, it wraps its
``base_layer`` and is swapped in with a single ``setattr``; the base weight is never changed
while the wrapper is in place.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from maskctl.masking.config import DEFAULT_INIT_SPARSITY, DEFAULT_THRESHOLD

SCORE_LOW = -0.02


class BinarizeSTE(torch.autograd.Function):
    """1[scores > threshold] forward; identity gradient backward (straight-through)."""

    @staticmethod
    def forward(ctx, scores: torch.Tensor, threshold: float) -> torch.Tensor:
        return (scores > threshold).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return grad_output, None


class MaskedLinearFunction(torch.autograd.Function):
    """``linear(x, W * 1[S > tau], b)`` that keeps a 1-byte bool mask for backward, not ``W_hat``.

    Composing ``W * mask`` with ``F.linear`` makes autograd keep the float ``W_hat`` of every
    masked layer alive until backward (4 bytes per masked weight; 272 MiB on BERT-base). Here
    backward recomputes ``W_hat`` from the frozen ``W`` (already resident) and the bool mask,
    one elementwise product per layer, and applies the straight-through estimator directly:
    ``dL/dS = (dL/dW_hat) * W``. Gradients are the same values the composed form produces.
    The bias is frozen in masking, but its gradient is returned when asked for.
    """

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, x, weight, scores, bias, threshold, held=None):
        mask = scores > threshold if held is None else (scores > threshold) ^ held
        out = F.linear(x, weight * mask, bias)
        ctx.save_for_backward(x, weight, mask)
        return out

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, grad_out):
        x, weight, mask = ctx.saved_tensors
        grad_x = grad_scores = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_out @ (weight * mask).to(grad_out.dtype)
        if ctx.needs_input_grad[2]:
            flat_grad = grad_out.reshape(-1, grad_out.shape[-1])
            flat_x = x.reshape(-1, x.shape[-1]).to(flat_grad.dtype)
            grad_scores = (flat_grad.t() @ flat_x).to(weight.dtype).mul_(weight)
        if ctx.needs_input_grad[3]:
            grad_bias = grad_out.reshape(-1, grad_out.shape[-1]).sum(0)
        return grad_x, None, grad_scores, grad_bias, None, None


def score_upper_bound(init_sparsity: float, threshold: float) -> float:
    """Upper end ``s`` of U(-0.02, s) so that a fraction ``init_sparsity`` starts below tau.

    P(S <= tau) = (tau + 0.02) / (s + 0.02) = p  =>  s = (0.02 + tau) / p - 0.02
    (the official code's initialisation).
    """
    if not 0.0 < init_sparsity < 1.0:
        raise ValueError(f"initial sparsity must be in (0, 1), got {init_sparsity}")
    return (-SCORE_LOW + threshold) / init_sparsity + SCORE_LOW


def initial_scores(shape: tuple[int, ...], init_sparsity: float, threshold: float, seed: int) -> torch.Tensor:
    """Draw scores from U(-0.02, s) with numpy's PCG64, a portable, documented generator.

    The same ``seed`` gives bit-identical scores on every platform and device, so a bundle can
    regenerate its initial mask from the seed it stores (needed for mask-difference analyses).
    """
    high = score_upper_bound(init_sparsity, threshold)
    rng = np.random.Generator(np.random.PCG64(seed))
    values = rng.uniform(SCORE_LOW, high, size=shape).astype(np.float32)
    return torch.from_numpy(values)


def initial_mask(layer: MaskedLinear) -> torch.Tensor:
    """The bool mask the seed gave ``layer`` (where every score started), on its scores' device."""
    scores = initial_scores(tuple(layer.scores.shape), layer.init_sparsity, layer.threshold, layer.seed)
    return (scores > layer.threshold).to(layer.scores.device)


def replace_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` where ``root``'s submodule ``name`` is (how a layer is wrapped and
    unwrapped in place, for training and for serving)."""
    parent_name, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, attr, module)


class WrappedLinear(nn.Module):
    """What a module wrapping a ``base_layer`` linear (PEFT's pattern) reports of its shape."""

    base_layer: nn.Linear

    @property
    def in_features(self) -> int:
        return self.base_layer.in_features

    @property
    def out_features(self) -> int:
        return self.base_layer.out_features


class MaskedLinear(WrappedLinear):
    """Wraps ``base_layer`` (an ``nn.Linear``) and learns a binary mask over its weight."""

    def __init__(
        self,
        base_layer: nn.Linear,
        threshold: float = DEFAULT_THRESHOLD,
        init_sparsity: float = DEFAULT_INIT_SPARSITY,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(base_layer, nn.Linear):
            raise TypeError(f"MaskedLinear wraps nn.Linear, got {type(base_layer).__name__}")
        self.base_layer = base_layer
        self.threshold = float(threshold)
        self.init_sparsity = float(init_sparsity)
        self.seed = int(seed)
        base_layer.weight.requires_grad_(False)
        if base_layer.bias is not None:
            base_layer.bias.requires_grad_(False)
        scores = initial_scores(tuple(base_layer.weight.shape), init_sparsity, threshold, seed)
        self.scores = nn.Parameter(scores.to(base_layer.weight.device))
        # --max-flips: bits whose score crossed the threshold but stay at their initial value
        # (``FlipBudget`` sets it; None: the mask is 1[S > tau], the paper's)
        self.held: torch.Tensor | None = None

    def binary_mask(self) -> torch.Tensor:
        """The current mask as a bool tensor (no gradient)."""
        with torch.no_grad():
            mask = self.scores > self.threshold
            return mask if self.held is None else mask ^ self.held

    def masked_weight(self) -> torch.Tensor:
        """``W * 1[S > tau]`` with the straight-through gradient path to the scores."""
        weight = self.base_layer.weight
        mask = BinarizeSTE.apply(self.scores, self.threshold)
        if self.held is not None:
            mask = mask + self.held.to(mask.dtype) * (1 - 2 * mask).detach()  # flipped where held, same gradient
        return weight * mask.to(weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (torch.is_grad_enabled() and self.scores.requires_grad) or self.base_layer.weight.requires_grad:
            return F.linear(x, self.masked_weight(), self.base_layer.bias)
        return MaskedLinearFunction.apply(
            x, self.base_layer.weight, self.scores, self.base_layer.bias, self.threshold, self.held
        )

    def merged_linear(self) -> nn.Linear:
        """Return ``base_layer`` with the mask multiplied into its weight (in place)."""
        with torch.no_grad():
            self.base_layer.weight.mul_(self.binary_mask().to(self.base_layer.weight.dtype))
        return self.base_layer

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, init_sparsity={self.init_sparsity}, seed={self.seed}"
