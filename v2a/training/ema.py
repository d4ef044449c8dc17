"""Exponential moving average of a network's weights, built on torch.optim.swa_utils."""

from __future__ import annotations

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def make_ema(net: nn.Module, decay: float) -> AveragedModel:
    """An EMA copy of ``net`` with gradients off.

    It is a submodule of the LightningModule, so it is saved in every checkpoint, moved to the
    right device and dtype with the model, and identical on every DDP rank (each rank applies the
    same update to the same all-reduced weights).
    """
    if not 0.0 < decay < 1.0:
        raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
    ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    ema.requires_grad_(False)
    return ema
