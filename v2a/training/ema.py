"""Exponential moving average of a network's weights, built on torch.optim.swa_utils."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def warmup_ema_fn(decay: float):
    """EMA update with warm-up: the effective decay is ``min(decay, (1 + n) / (10 + n))`` at update n.

    Without warm-up a 0.998 EMA still carries a third of the random initial weights after 500 steps,
    and samples drawn from it early in training are noise.
    """

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = float(num_averaged)
        beta = min(decay, (1 + n) / (10 + n))
        floats = [i for i, a in enumerate(averaged) if a.is_floating_point()]
        if floats:   # AveragedModel calls this once per (device, dtype) group
            torch._foreach_lerp_([averaged[i] for i in floats], [current[i] for i in floats], 1 - beta)
        for a, c in zip(averaged, current, strict=True):
            if not a.is_floating_point():   # integer buffers (position ids, counters) are copied, not averaged
                a.copy_(c)

    return update


def make_ema(net: nn.Module, decay: float) -> AveragedModel:
    """An EMA copy of ``net`` (with warm-up) and gradients off.

    It is a submodule of the LightningModule, so it is saved in every checkpoint, moved to the
    right device and dtype with the model, and identical on every DDP rank (each rank applies the
    same update to the same all-reduced weights).
    """
    if not 0.0 < decay < 1.0:
        raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
    ema = AveragedModel(net, multi_avg_fn=warmup_ema_fn(decay), use_buffers=True)
    ema.requires_grad_(False)
    return ema
