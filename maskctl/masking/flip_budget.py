"""``--max-flips``: a hard bound on the mask bits a task may flip against its initial mask.

A task's cost, on disk and resident, grows with the bits its mask flips (the bundle codes them,
a served task holds them). ``--flip-penalty`` only discourages flips; this bounds them exactly.
With a budget of ``B`` bits (a share of every masked weight, counted over all masked layers
together), after every optimizer step the mask is the scores' mask with only the ``B`` crossings
of the largest **importance** flipped; every other score on the far side of the threshold is
**held** at its initial bit (``MaskedLinear.held``). The scores themselves train freely, so a
held score keeps what it learned and takes a place in the budget as soon as its importance
beats a kept one's.

The importance is movement pruning's (Sanh et al. 2020) for a mask bit: the gradient push
towards the flipped side, ``-dL/dS`` signed by the bit's initial value and summed over every
step since the start. It is the first-order loss the flip has saved, step after step; the score's
own margin ``|S - tau|`` (Adam's normalised steps minus where the seed put the score) favours
bits that merely started near the threshold. Pilots on bbc-news and wnut16 (BENCHMARKS.md,
"Fewer flipped bits") measured both, with the crossings beyond the budget clamped back onto the
threshold instead of held (which erases what they learned, so the first crossings keep their
places), and with the budget enforced only at each evaluation or after a late-rising
``--flip-penalty``: holding by importance led on both tasks.

Exact by construction: after every step (so at every evaluation, in every kept state and in the
written bundle) at most ``B`` bits differ from the initial mask. Ties at the cut go to the first
by position (layer order, then index). The importance is accumulated from the gradients the
optimizer steps with (after accumulation and, under DDP, averaging: every process holds the same
bits) and travels in checkpoints, and the initial bits come from the seed, so a resumed run holds
the same bits.
"""

from __future__ import annotations

import math

import torch

from maskctl.masking.layer import MaskedLinear, initial_mask


class FlipBudget:
    """At most ``budget`` flipped bits over ``layers``: ``accumulate()`` before each optimizer
    step, ``hold()`` after it."""

    def __init__(self, layers: dict[str, MaskedLinear], fraction: float) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"flip budget must be in [0, 1], got {fraction}")
        self.layers = layers
        self.weights = sum(layer.scores.numel() for layer in layers.values())
        self.budget = math.floor(fraction * self.weights + 1e-9)
        self.initial = {name: initial_mask(layer) for name, layer in layers.items()}
        # +1 where the bit started on (a flip lowers its score), -1 where it started off
        self.sign = {name: self.initial[name].to(torch.float32) * 2 - 1 for name in layers}
        self.importance = {name: torch.zeros_like(layer.scores, dtype=torch.float32) for name, layer in layers.items()}

    def flips(self) -> int:
        """Bits that differ from the initial mask now."""
        return sum(int((layer.binary_mask() != self.initial[name]).sum()) for name, layer in self.layers.items())

    @torch.no_grad()
    def accumulate(self) -> None:
        """Add this step's push towards each bit's flipped side (a step whose gradients are not
        finite, e.g. an fp16 overflow the optimizer skips, adds nothing)."""
        grads = {name: layer.scores.grad for name, layer in self.layers.items() if layer.scores.grad is not None}
        if not all(bool(torch.isfinite(g).all()) for g in grads.values()):
            return
        for name, grad in grads.items():
            self.importance[name].addcmul_(grad.float(), self.sign[name])

    @torch.no_grad()
    def hold(self) -> int:
        """Hold every crossing beyond the budget at its initial bit; returns how many are held."""
        crossed = {name: (layer.scores > layer.threshold) != self.initial[name] for name, layer in self.layers.items()}
        count = sum(int(c.sum()) for c in crossed.values())
        if count <= self.budget:
            for layer in self.layers.values():
                layer.held = None
            return 0
        keep = self._keep(torch.cat([self.importance[name][crossed[name]].cpu() for name in self.layers]), count)
        start = 0
        for name, layer in self.layers.items():
            where = crossed[name].nonzero(as_tuple=True)
            n = where[0].numel()
            held = torch.zeros_like(crossed[name])
            held[tuple(w[~keep[start : start + n].to(w.device)] for w in where)] = True
            layer.held = held
            start += n
        return count - self.budget

    def _keep(self, keys: torch.Tensor, count: int) -> torch.Tensor:
        """The ``budget`` largest keys (ties: the first by position)."""
        keep = torch.zeros(count, dtype=torch.bool)
        if self.budget:
            cut = torch.kthvalue(keys, count - self.budget + 1).values  # the budget-th largest key
            keep = keys > cut
            ties = (keys == cut).nonzero().flatten()
            keep[ties[: self.budget - int(keep.sum())]] = True
        return keep
