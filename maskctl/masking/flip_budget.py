"""``--max-flips``: a hard bound on the mask bits a task may flip against its initial mask.

A task's cost, on disk and resident, grows with the bits its mask flips (the bundle codes them,
a served task holds them). ``--flip-penalty`` only discourages flips; this bounds them exactly:
with a budget of ``B`` bits (a share of every masked weight, counted over all masked layers
together), whenever more than ``B`` scores sit on the other side of the threshold from where the
seed put them, the ``B`` crossings with the largest margin ``|S - tau|`` stay and every other
crossed score is set back onto the threshold, on its initial side. That is the Euclidean
projection of the scores onto "at most ``B`` crossings": the smallest move that meets the bound.
A clamped score sits at the threshold, so the task's gradient can push it across again and it
competes with the kept crossings for the budget on the next projection.

PILOT: which rule wins is measured on bbc-news and wnut16 (BENCHMARKS.md); the losers are
removed once it is known. ``step-margin`` projects after every optimizer step, ``eval-margin``
only before each dev evaluation (so every evaluated, kept and written state is in budget),
``step-movement`` ranks crossings by movement pruning's importance (the raw gradient push
``-dL/dS`` towards the crossed side, accumulated over every step) instead of the margin, and
``eval-ramp`` is ``eval-margin`` with ``--flip-penalty`` ramped from 0 at half-way to its value
at the last step. ``hold-margin`` and ``hold-shift`` leave the scores free and hold every
crossing beyond the budget at its initial bit instead (the mask is the scores' with only the ``B``
crossings of the largest margin, of the largest move ``|S - S0|`` from the initial score, or of
the largest movement importance (``hold-movement``) flipped), after every step.

Ties at the cut are broken by position (layer order, then index), so the selection is the same
on every run; the initial side comes from the seed (``initial_scores``), so a resumed run
projects onto the same set.
"""

from __future__ import annotations

import math

import torch

from maskctl.masking.layer import MaskedLinear, initial_scores

def initial_side(layer: MaskedLinear) -> torch.Tensor:
    """The bool mask the seed gave this layer (where every score started)."""
    scores = initial_scores(tuple(layer.scores.shape), layer.init_sparsity, layer.threshold, layer.seed)
    return (scores > layer.threshold).to(layer.scores.device)


class FlipBudget:
    """At most ``budget`` crossed scores over ``layers``; ``project()`` enforces it."""

    def __init__(self, layers: dict[str, MaskedLinear], fraction: float, rule: str = "step-margin") -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"flip budget must be in [0, 1], got {fraction}")
        self.layers = layers
        self.rule = rule
        self.weights = sum(layer.scores.numel() for layer in layers.values())
        self.budget = math.floor(fraction * self.weights + 1e-9)
        self.initial = {name: initial_side(layer) for name, layer in layers.items()}
        self.push: dict[str, torch.Tensor] = {}
        self.start: dict[str, torch.Tensor] = {}
        if rule == "hold-shift":  # |S - S0|: how far training moved the score, whatever its start
            self.start = {name: initial_scores(tuple(layer.scores.shape), layer.init_sparsity, layer.threshold,
                                               layer.seed).to(layer.scores.device) for name, layer in layers.items()}
        if rule in ("step-movement", "hold-movement"):  # -dL/dS towards the crossed side, summed over every backward
            for name, layer in layers.items():
                self.push[name] = torch.zeros_like(layer.scores, dtype=torch.float32)
                sign = self.initial[name].to(torch.float32) * 2 - 1  # +1: started on, crossing lowers S
                layer.scores.register_hook(lambda g, p=self.push[name], s=sign: p.add_(g.detach().float() * s))

    def flips(self) -> int:
        """Bits that differ from the initial mask now."""
        return sum(int((layer.binary_mask() != self.initial[name]).sum()) for name, layer in self.layers.items())

    @torch.no_grad()
    def hold(self) -> int:
        """The ``hold-*`` rules: leave the scores free and hold every crossing beyond the budget
        at its initial bit (``MaskedLinear.held``), so a held score keeps what it learned and
        takes a place in the budget as soon as its key beats a kept one's; returns the held count."""
        crossed = {name: (layer.scores > layer.threshold) != self.initial[name] for name, layer in self.layers.items()}
        count = sum(int(c.sum()) for c in crossed.values())
        if count <= self.budget:
            for layer in self.layers.values():
                layer.held = None
            return 0
        keep = self._keep(torch.cat([self._key(name, crossed[name]) for name in self.layers]), count)
        start = 0
        for name, layer in self.layers.items():
            where = crossed[name].nonzero(as_tuple=True)
            n = where[0].numel()
            held = torch.zeros_like(crossed[name])
            held[tuple(w[~keep[start:start + n].to(w.device)] for w in where)] = True
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

    @torch.no_grad()
    def project(self) -> int:
        """Clamp every crossing beyond the budget back onto the threshold (initial side);
        returns the number of bits reverted."""
        crossed = {name: (layer.scores > layer.threshold) != self.initial[name] for name, layer in self.layers.items()}
        count = sum(int(c.sum()) for c in crossed.values())
        if count <= self.budget:
            return 0
        keep = self._keep(torch.cat([self._key(name, crossed[name]) for name in self.layers]), count)
        start = 0
        for name, layer in self.layers.items():
            where = crossed[name].nonzero(as_tuple=True)
            n = where[0].numel()
            revert = ~keep[start:start + n].to(layer.scores.device)
            start += n
            rows = tuple(w[revert] for w in where)
            on = self.initial[name][rows]
            tau = torch.tensor(layer.threshold, dtype=layer.scores.dtype)
            above = torch.nextafter(tau, torch.tensor(math.inf, dtype=tau.dtype))  # the smallest score kept on
            layer.scores[rows] = torch.where(on, above.to(layer.scores.device), tau.to(layer.scores.device))
        return count - self.budget

    def _key(self, name: str, crossed: torch.Tensor) -> torch.Tensor:
        layer = self.layers[name]
        if self.rule in ("step-movement", "hold-movement"):
            return self.push[name][crossed].cpu()
        if self.rule == "hold-shift":
            return (layer.scores[crossed] - self.start[name][crossed]).abs().float().cpu()
        return (layer.scores[crossed] - layer.threshold).abs().float().cpu()
