"""ResidentModel: masks (through ServedLinear's merge) and heads switched in place, undone bit for bit."""

from __future__ import annotations

import torch
from torch import nn

from maskctl.masking.resident import ResidentModel
from maskctl.masking.served import ServedLinear


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))


def _mask(shape, seed: int, zeros: float = 0.3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator) >= zeros


def test_apply_switches_masks_and_head_and_restore_is_bit_exact():
    net = _net()
    pristine = {k: v.clone() for k, v in net.state_dict().items()}
    resident = ResidentModel(net)
    masks_a = {"0": _mask((12, 16), 1)}
    masks_b = {"0": _mask((12, 16), 2), "2": _mask((3, 12), 3)}
    head_b = {"2.bias": torch.tensor([1.0, 2.0, 3.0])}
    resident.apply(masks_a, key="a")
    assert resident.active == "a"
    assert torch.equal(net[0].weight, pristine["0.weight"] * masks_a["0"])
    resident.apply(masks_b, head_b, key="b")  # undoes a first
    assert torch.equal(net[0].weight, pristine["0.weight"] * masks_b["0"])
    assert torch.equal(net[2].weight, pristine["2.weight"] * masks_b["2"])
    assert torch.equal(net[2].bias, head_b["2.bias"])
    assert resident.saved_bytes() > 0
    resident.apply(masks_a, key="a")  # names and heads resolve through served layers
    assert torch.equal(net[0].weight, pristine["0.weight"] * masks_a["0"]) and torch.equal(
        net[2].bias, pristine["2.bias"]
    )
    resident.restore()
    assert resident.active is None and resident.saved_bytes() == 0
    assert all(type(m) is not ServedLinear for m in net.modules())  # the plain model again
    assert list(net.state_dict()) == list(pristine)
    for key, value in net.state_dict().items():
        assert torch.equal(value.view(torch.int32), pristine[key].view(torch.int32)), key  # bit for bit


def test_apply_resolves_names_in_another_model_sharing_the_weights():
    shared = nn.Linear(16, 12)
    pristine = shared.weight.detach().clone()
    one, other = nn.Sequential(shared), nn.Sequential(nn.Identity(), shared)
    resident = ResidentModel(one)
    mask = _mask((12, 16), 4)
    resident.apply({"1": mask}, model=other)
    assert torch.equal(shared.weight, pristine * mask)
    resident.restore()
    assert torch.equal(shared.weight, pristine)
