"""The EMA copy: warm-up, and networks that hold integer buffers (e.g. a pretrained encoder's position ids)."""

import torch
from torch import nn

from v2a.training.ema import make_ema


class WithIntegerBuffer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2)
        self.register_buffer("position_ids", torch.arange(4))


def test_ema_averages_floats_with_warm_up_and_copies_integer_buffers():
    net = WithIntegerBuffer()
    ema = make_ema(net, decay=0.9)
    start = ema.module.linear.weight.clone()
    with torch.no_grad():
        net.linear.weight.add_(1.0)
        net.position_ids.add_(10)
    ema.update_parameters(net)   # the first update copies (AveragedModel), the warm-up takes over after
    ema.update_parameters(net)
    torch.testing.assert_close(ema.module.linear.weight, start + 1.0)
    with torch.no_grad():
        net.linear.weight.add_(1.0)
    ema.update_parameters(net)   # update n=2: beta = min(0.9, 3/12) = 0.25
    torch.testing.assert_close(ema.module.linear.weight, start + 1.0 + 0.75)
    assert torch.equal(ema.module.position_ids, torch.arange(4) + 10)
